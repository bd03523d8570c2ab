#!/usr/bin/env bash
# Runs the carapace-fs criterion benches (crates/carapace-fs/benches/fs_ops.rs) and prints,
# per operation, the mean time of std::fs, carapace (openat2) and carapace (fallback walk), and
# their ratio to std measured in the same run.
#
#   scripts/bench-fs.sh            # all groups
#   scripts/bench-fs.sh read_4k    # a criterion filter
#
# Env: CARAPACE_BENCH_DIR=<dir> puts the benchmark files on another filesystem (default: $TMPDIR).
set -euo pipefail
cd "$(dirname "$0")/.."

filter="${1:-}"
cargo bench -p carapace-fs --bench fs_ops -- --noplot ${filter:+"$filter"} >&2

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
python3 - "$target_dir/criterion" <<'PY'
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

print(f"{'operation':<20} {'std':>10} {'carapace':>10} {'ratio':>7} {'fallback':>10} {'ratio':>7}  target")
for g in groups:
    s, c, fb = mean(g, "std"), mean(g, "carapace"), mean(g, "carapace_fallback")
    if s is None and c is None:
        continue
    r = f"{c/s:.2f}x" if s and c else "-"
    rf = f"{fb/s:.2f}x" if s and fb else "-"
    t = f"<= {targets[g]}x" if g in targets else ""
    print(f"{g:<20} {fmt(s):>10} {fmt(c):>10} {r:>7} {fmt(fb):>10} {rf:>7}  {t}")
PY
