#!/usr/bin/env bash
# Sets up, builds, and runs the main job: the shipped reasoning model
# (models/huginn-tasks) thinking longer in latent space.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build/bin/huginn demo -m models/huginn-tasks --out demo-out "$@"
