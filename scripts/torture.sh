#!/usr/bin/env bash
# The torture suite: attacks carapace at volume and prints one line per family —
# `family attempts refused-as-expected problems` — and a total; exits non-zero on any problem.
#   scripts/torture.sh            short form (CI; a few minutes)
#   scripts/torture.sh --full     the figures recorded in docs/reliability.md
#   scripts/torture.sh --json     the same as JSON; --only escape,races picks families
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo build -q -p carapace -p carapace-torture
# The binaries are where cargo put them: honour CARGO_TARGET_DIR (and build.target-dir).
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export CARAPACE_BIN="$target_dir/debug/carapace"
exec nice -n 10 "$target_dir/debug/carapace-torture" "$@"
