#!/usr/bin/env bash
# The sanitizer job: the library, the CLI and the tests built with
# AddressSanitizer + UndefinedBehaviorSanitizer at -O1 (build-asan/), then the
# tests that exercise the loaders, the tokenizer, generation, the server API
# and the threads of a forward stage (tensor/team.h). Any report fails the
# job. Run after scripts/setup.sh (or scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUGINN_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build build-asan -j"$(nproc)" --target huginn_tests huginn_cli
# LeakSanitizer: only OpenMPI's own allocations at MPI_Init are suppressed
# (scripts/lsan.supp); every other leak is a failure.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
filter='BadInput*:Safetensors*:Checkpoint*:Config*:Json*:Hardening*:BadCli*:Parse*:Tokenize*:Tokenizer*:Unicode*:Chat*:ChatCli*:GenerationConfig*:Forward*:Generate*:GenerateCli*:Sampling*:Serve*:Determinism.Gemm*:Kernels.Team*:Kernels.Fused*:Kernels.BalancedFor*'
build-asan/bin/huginn_tests --gtest_filter="$filter" --gtest_brief=1
echo "sanitizer job: no reports"
