#!/usr/bin/env bash
# `exec true` latency on bwrap: carapace's exec path vs the same bwrap command line run directly.
# Median and p99 over CARAPACE_BENCH_RUNS (default 300, at least 200) interleaved runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v bwrap >/dev/null || { echo "bwrap is not installed (apt-get install bubblewrap)" >&2; exit 1; }
exec cargo bench -p carapace-sandbox --bench exec_latency "$@"
