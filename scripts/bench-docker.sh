#!/usr/bin/env bash
# Docker sandbox benchmark: warm exec latency (median, p99) of carapace's Docker backend against
# `docker exec` of the same command through the CLI, and cold start (create + start) time.
#   scripts/bench-docker.sh [RUNS] [COLD_RUNS]      (defaults 300 and 15)
# Installs / starts the engine and imports the test image through scripts/docker.sh.
# Results go in the "## Sandbox (docker)" section of docs/benchmarks.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/docker.sh
source scripts/docker.sh
echo "==> $(nproc) CPUs, $(docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}')" >&2
cargo run --release -q -p carapace-sandbox --example docker_bench -- "$@"
