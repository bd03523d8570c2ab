#!/usr/bin/env bash
# Starts carapace on its embedded defaults, from a fresh Debian/Ubuntu machine with a Rust
# toolchain: installs bubblewrap (the default sandbox backend), builds the release binary and
# runs `carapace up` (state in ~/.carapace unless $CARAPACE_STATE_DIR says otherwise).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
if ! command -v cargo >/dev/null; then
  echo "carapace needs a Rust toolchain (cargo); install it with rustup, then run this again" >&2
  exit 2
fi
apt_ensure bubblewrap
cargo build --release -p carapace
exec target/release/carapace up "$@"
