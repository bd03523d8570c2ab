# shellcheck shell=bash
# scripts/chromium.sh — makes Debian's headless-capable `chromium` available for the browser tests.
#
# Contract:
#   - Sourced by scripts/test.sh (or run directly: `bash scripts/chromium.sh`).
#   - Idempotent: when `chromium` is already on PATH it does nothing (no apt, no network).
#   - Otherwise installs the Debian package `chromium` (apt-get, as root or through sudo) and
#     fails loudly when that does not give a working `chromium`.
#   - Exports CARAPACE_CHROMIUM=<absolute path of the binary>. carapace-browser itself finds the
#     binary through `browser.executablePath`, else `chromium` / `chromium-browser` on PATH; the
#     export is for humans and other scripts.
#   - Never `exit`s (safe to source under `set -e`); returns non-zero on failure.
#   - Starts nothing: each test launches (and reaps) its own Chromium with a fresh profile dir.

_carapace_chromium_main() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if ! command -v apt_ensure >/dev/null 2>&1; then
    # shellcheck source=scripts/lib.sh
    source "$here/lib.sh"
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "==> chromium (browser tool tests)" >&2
    apt_ensure chromium || return 1
  fi
  local bin
  bin=$(command -v chromium) || {
    echo "scripts/chromium.sh: chromium is still not on PATH after installing" >&2
    return 1
  }
  "$bin" --version >/dev/null 2>&1 || {
    echo "scripts/chromium.sh: $bin --version failed" >&2
    return 1
  }
  export CARAPACE_CHROMIUM="$bin"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _carapace_chromium_main
  echo "$CARAPACE_CHROMIUM"
else
  _carapace_chromium_main
fi
