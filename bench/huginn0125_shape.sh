#!/usr/bin/env bash
# Huginn-0125-shape run (issue #11, item 6): a random checkpoint of Huginn-0125's
# exact shape (3.56B parameters, width 5280, BF16 file of 7.1 GB) created on the
# fly with `huginn init`, quantized to Q4_0 and Q8_0 GGUF with `huginn quantize`,
# then decode tokens/s at r=4 and r=32, load time and peak RSS of a short
# generate, beside today's F32 path (--convert-f32 on the BF16 directory), all in
# this one invocation. Nothing is committed; everything is removed at the end.
#
#   bench/huginn0125_shape.sh [WORKDIR] [TOKENS]      # default /work/scratch/h0125, 4 tokens
#   KEEP=1 bench/huginn0125_shape.sh                  # keep the files
# Needs ~19 GB of disk and ~15 GB of free RAM (the F32 conversion).
# OpenMP's wait policy is left to the caller: libgomp's default (spin, then
# sleep) is what a user gets; OMP_WAIT_POLICY=PASSIVE (sleep at once) suits a
# machine shared with other jobs but costs every parallel region a wake-up,
# which the quantized types (more, shorter regions per byte) feel most.
# Peak RSS and wall time come from /usr/bin/time -v. Load time = wall time of the
# process minus the generation time it reports (so it includes start and exit).
# Each file is read once (cat > /dev/null) before its timed run, so decode speed
# is not the disk's: the files were written moments ago but the F32 conversion
# (14 GB) evicts them from the page cache. tokens/s = tokens / the generation
# time reported (a 1-token prompt, then TOKENS decode steps at depth r).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
H=${HUGINN:-$ROOT/build/bin/huginn}
W=${1:-/work/scratch/h0125}
N=${2:-4}
mkdir -p "$W"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
CONFIG='{"n_embd":5280,"n_heads":55,"num_key_value_heads":55,"intermediate_size":17920,"vocab_size":65536,
"padding_multiple":4096,"block_size":4096,"n_layers_in_prelude":2,"n_layers_in_recurrent_block":4,
"n_layers_in_coda":2,"mean_recurrence":32,"mean_backprop_depth":8,"rope_base":50000,"norm_eps":1e-6,
"tie_embeddings":true,"qk_bias":true,"bias":false,"model_type":"huginn_raven","architectures":["RavenForCausalLM"]}'

# timed CMD...: runs it under /usr/bin/time -v; prints "wall_s peak_rss_kb" on fd 3
timed() {
  /usr/bin/time -v -o "$W/time.txt" "$@"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
  echo "$wall $rss" >&3
}
mb() { awk -v b="$1" 'BEGIN {printf "%.0f", b/1048576}'; }

echo "# $(date -u +%FT%TZ) $(nproc) cpus, load: $(uptime | sed 's/.*load average: //')"
exec 3>"$W/t.txt"
timed "$H" init --config "$CONFIG" --out "$W/bf16" --dtype BF16 --seed 1 >/dev/null
read -r wall rss <"$W/t.txt"
bf16_bytes=$(stat -c %s "$W/bf16/model.safetensors")
echo "init (BF16, streaming): ${wall}s, peak RSS $(mb $((rss * 1024))) MB, file $(mb "$bf16_bytes") MB"
for q in q8_0 q4_0; do
  exec 3>"$W/t.txt"
  timed "$H" quantize "$W/bf16" "$W/$q.gguf" --type "$q" >/dev/null 2>&1
  read -r wall rss <"$W/t.txt"
  echo "quantize $q: ${wall}s, peak RSS $(mb $((rss * 1024))) MB, file $(mb "$(stat -c %s "$W/$q.gguf")") MB"
done

echo
echo "| model | r | tokens/s | s/token | load s | peak RSS MB | file MB | KV MB | RSS limit MB (1.1 file + KV + 200) | speedup vs F32 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
declare -A f32_tps
for r in 4 32; do
  for m in f32 q8_0 q4_0; do
    if [ "$m" = f32 ]; then args=(-m "$W/bf16" --convert-f32); file=$bf16_bytes
    else args=(-m "$W/$m.gguf"); file=$(stat -c %s "$W/$m.gguf"); fi
    cat "${args[1]}"/model.safetensors "${args[1]}" >/dev/null 2>&1 || true  # page cache: directory or file
    exec 3>"$W/t.txt"
    timed "$H" generate "${args[@]}" --ids 1 -n "$N" --steps "$r" --no-default-stops -q 2>"$W/gen.txt" >/dev/null
    read -r wall rss <"$W/t.txt"
    line=$(grep summary "$W/gen.txt")
    gen_s=$(sed -E 's/.*\(([0-9.]+) s\).*/\1/' <<<"$line")
    tps=$(awk -v n="$N" -v s="$gen_s" 'BEGIN {printf "%.3f", n/s}')
    [ "$m" = f32 ] && f32_tps[$r]=$tps
    # KV cache as the summary reports it ("KV memory 12.34 MiB")
    kv_bytes=$(sed -E 's/.*KV memory ([0-9.]+) ([KMGT]?i?B).*/\1 \2/' <<<"$line" |
      awk '{m=1; if ($2=="KiB") m=1024; if ($2=="MiB") m=1048576; if ($2=="GiB") m=1073741824; printf "%.0f", $1*m}')
    load=$(awk -v w="$wall" -v g="$gen_s" 'BEGIN {printf "%.1f", w-g}')
    limit=$(awk -v f="$file" -v k="$kv_bytes" 'BEGIN {printf "%.0f", (1.1*f + k)/1048576 + 200}')
    [ "$m" = f32 ] && limit="-"
    speed=$(awk -v a="$tps" -v b="${f32_tps[$r]}" 'BEGIN {printf "%.2fx", a/b}')
    echo "| $m | $r | $tps | $(awk -v t="$tps" 'BEGIN {printf "%.2f", 1/t}') | $load | $(mb $((rss * 1024))) | $(mb "$file") | $(mb "$kv_bytes") | $limit | $speed |"
  done
done
echo "# end $(date -u +%FT%TZ), load: $(uptime | sed 's/.*load average: //')"
