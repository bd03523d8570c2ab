#!/usr/bin/env bash
# Starts carapace on its embedded defaults, from a fresh Debian/Ubuntu machine with a Rust
# toolchain: installs bubblewrap (the default sandbox backend), builds the release binary,
# installs it as `carapace` where the shell finds it, and runs `carapace up` (state in
# ~/.carapace unless $CARAPACE_STATE_DIR says otherwise). Arguments go to `carapace up`.
#
# The binary goes to ${CARGO_HOME:-~/.cargo}/bin — the directory rustup puts on PATH — and
# when that directory is not on this shell's PATH the script prints the line to add.
# $CARAPACE_BIN names an already built binary to install instead of building one.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_ensure bubblewrap
BIN=${CARAPACE_BIN:-}
if [[ -z "$BIN" ]]; then
  if ! command -v cargo >/dev/null; then
    echo "carapace needs a Rust toolchain (cargo); install it with rustup, then run this again" >&2
    exit 2
  fi
  cargo build --release -p carapace
  BIN=target/release/carapace
fi
DEST="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$DEST"
install -m 0755 "$BIN" "$DEST/carapace.new"
mv -f "$DEST/carapace.new" "$DEST/carapace"
echo "==> installed carapace as $DEST/carapace" >&2
case ":$PATH:" in
  *":$DEST:"*) ;;
  *)
    {
      echo "==> $DEST is not on your PATH; add it for new shells, and for this one:"
      echo "    echo 'export PATH=\"$DEST:\$PATH\"' >> ~/.profile"
      echo "    export PATH=\"$DEST:\$PATH\""
    } >&2
    ;;
esac
exec "$DEST/carapace" up "$@"
