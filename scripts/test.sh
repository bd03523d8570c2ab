#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine with a Rust toolchain:
#   scripts/test.sh
# It installs and starts what the tests need — bubblewrap, a Docker engine with a locally
# imported test image, a Synapse homeserver on loopback, Chromium — then runs every test with
# CARAPACE_TEST_STRICT=1, so a test whose dependency is missing fails instead of skipping.
# Extra arguments go to the test runner (e.g. `scripts/test.sh -p carapace-fs`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

export CARAPACE_TEST_STRICT=1

echo "==> test dependencies" >&2
apt_ensure bubblewrap ca-certificates curl
for dep in scripts/docker.sh scripts/synapse.sh scripts/chromium.sh scripts/llama.sh scripts/mcp-python.sh; do
  if [ -f "$dep" ]; then
    # shellcheck disable=SC1090
    source "$dep"
  fi
done

echo "==> tests" >&2
if [ $# -eq 0 ]; then set -- --workspace; fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
scripts/torture.sh
