#!/usr/bin/env bash
# Installs the Debian packages huginn.cpp builds with (as root), or says exactly
# what to install (otherwise). Then configures and builds into build/.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev
      libonig-dev libutf8proc-dev libcpp-httplib-dev libopenmpi-dev openmpi-bin libhwy-dev
      libgtest-dev libbenchmark-dev
      python3-dev python3-numpy pybind11-dev python3-pybind11 python3-pytest
      clang libclang-rt-14-dev libomp-14-dev)  # the fuzzers and the sanitizer job (scripts/fuzz.sh, sanitize.sh)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (for the tokenizer parity tests): any install that provides
# both commands will do (some machines ship a Node.js build that bundles npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages; run as root:"
    echo "  apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
