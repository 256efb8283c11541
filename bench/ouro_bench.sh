#!/bin/sh
# Ouro-1.4B-shaped decode benchmark: makes the model per dtype in a temporary
# directory (never committed), runs bench_ouro in a fresh process (its peak
# RSS is the run's own), deletes the model. Usage:
#   bench/ouro_bench.sh [BUILD_DIR] [DTYPES] [extra bench_ouro args]
#   e.g. bench/ouro_bench.sh build "BF16 F32" --gen 8 -t 2
set -e
B=${1:-build}; DTYPES=${2:-"BF16 F32"}
shift 2 2>/dev/null || shift $#
for dt in $DTYPES; do
  dir=$(mktemp -d /tmp/ouro-bench-$dt.XXXXXX)
  "$B/bin/bench_ouro" --make "$dir" --dtype "$dt"
  OMP_WAIT_POLICY=PASSIVE "$B/bin/bench_ouro" -m "$dir" "$@" || true
  rm -rf "$dir"
done
