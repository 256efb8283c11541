#!/bin/sh
# Ouro-1.4B-shaped decode benchmark: makes the model per type in a temporary
# directory (never committed), runs bench_ouro in a fresh process (its peak
# RSS is the run's own), deletes the model. F32 and BF16 are written as HF
# directories; a quantized type (q8_0, q4_0, ...) is the BF16 directory put
# through `huginn quantize` into one GGUF file, which is what is run. Usage:
#   bench/ouro_bench.sh [BUILD_DIR] [TYPES] [extra bench_ouro args]
#   e.g. bench/ouro_bench.sh build "BF16 F32 q8_0 q4_0" --gen 8 -t 2
# OpenMP's wait policy is the caller's (OMP_WAIT_POLICY=PASSIVE on a shared machine).
set -e
B=${1:-build}; TYPES=${2:-"BF16 F32"}
shift 2 2>/dev/null || shift $#
for t in $TYPES; do
  dir=$(mktemp -d /tmp/ouro-bench-$t.XXXXXX)
  case $t in
    F32|BF16)
      "$B/bin/bench_ouro" --make "$dir/m" --dtype "$t"
      model=$dir/m ;;
    *)
      "$B/bin/bench_ouro" --make "$dir/m" --dtype BF16
      "$B/bin/huginn" quantize "$dir/m" "$dir/m.gguf" --type "$t" --quiet
      rm -rf "$dir/m"
      model=$dir/m.gguf ;;
  esac
  echo "== $t ($(du -sh "$model" | cut -f1))"
  "$B/bin/bench_ouro" -m "$model" "$@" || true
  rm -rf "$dir"
done
