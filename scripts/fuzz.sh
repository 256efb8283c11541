#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, ASan + UBSan) into build-fuzz/
# and runs each for SECONDS (default 60) from its seed corpus.
#   bash scripts/fuzz.sh [SECONDS] [HARNESS...]
# New inputs go to build-fuzz/corpus/NAME (the seeds in fuzz/corpus stay as
# they are); a crash leaves build-fuzz/crash-* and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUGINN_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_safetensors fuzz_gguf fuzz_config fuzz_tokenizer fuzz_chat fuzz_server_request)
cmake --build build-fuzz -j"$(nproc)" --target "${harnesses[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1
for h in "${harnesses[@]}"; do
  mkdir -p build-fuzz/corpus/$h
  echo "== $h: ${secs}s"
  # -rss_limit_mb: any input that needs more memory than this is a finding.
  (cd build-fuzz && ./bin/$h -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
      -print_final_stats=1 corpus/$h ../fuzz/corpus/$h >fuzz-$h.log 2>&1) ||
    { tail -n 40 build-fuzz/fuzz-$h.log; echo "$h: FAILED (build-fuzz/fuzz-$h.log)"; exit 1; }
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" build-fuzz/fuzz-$h.log | tr '\n' ' '; echo
  test -z "$(ls build-fuzz/crash-* build-fuzz/leak-* build-fuzz/timeout-* build-fuzz/oom-* 2>/dev/null)" ||
    { echo "$h: a finding was saved in build-fuzz/"; exit 1; }
done
echo "fuzzers: no findings"
