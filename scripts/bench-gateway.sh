#!/usr/bin/env bash
# Load-tests the gateway on loopback with wrk and prints requests/s and latency percentiles for
#   1. POST /tools/invoke {"tool":"read","args":{"path":"bench-1k.txt"}} (a 1 KiB file), and
#   2. GET /healthz (no tool, no auth: the gateway's own HTTP overhead).
#
#   scripts/bench-gateway.sh                 # 10 s per run, 2 wrk threads, 16 then 64 connections
#   DURATION=30s CONNS="128" THREADS=1 scripts/bench-gateway.sh
#   NICE=-10 scripts/bench-gateway.sh        # gateway and wrk at nice -10 (root): ahead of
#                                            # compilers sharing the machine
#
# Builds `carapace` in release mode, starts `carapace gateway run` on a free port with a
# throw-away CARAPACE_STATE_DIR and a config that only adds `read` to gateway.tools.allow
# (embedded defaults otherwise: sandbox mode off, so `read` goes through
# the tool layer and carapace-fs on the host, no bwrap per call), and installs wrk with apt
# when missing. The load generator runs on the same machine as the gateway. wrk reports any
# non-2xx answers as "Non-2xx or 3xx responses".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh

DURATION="${DURATION:-10s}"
CONNS="${CONNS:-16 64}"
NICE="${NICE:-0}"
THREADS="${THREADS:-2}"

command -v wrk >/dev/null || apt_ensure wrk
cargo build --release -p carapace >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/release/carapace"

work="$(mktemp -d)"
gw_pid=""
cleanup() {
  [[ -n "$gw_pid" ]] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export CARAPACE_STATE_DIR="$work/state"
unset CARAPACE_TOKEN
mkdir -p "$CARAPACE_STATE_DIR/workspace"
# /tools/invoke serves no file tools unless gateway.tools.allow lists them (OpenClaw's default).
export CARAPACE_CONFIG="$work/carapace.json5"
printf '{ gateway: { tools: { allow: ["read"] } } }\n' > "$CARAPACE_CONFIG"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$CARAPACE_STATE_DIR/workspace/bench-1k.txt"

nice -n "$NICE" "$bin" gateway run --bind 127.0.0.1:0 --json --no-reload > "$work/ready.json" 2> "$work/gateway.log" &
gw_pid=$!
for _ in $(seq 100); do [[ -s "$work/ready.json" ]] && break; sleep 0.1; done
base="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$work/ready.json")"
token="$(cat "$CARAPACE_STATE_DIR/secrets/gateway-token")"

# Sanity: one call must succeed and return the 1 KiB file.
curl -fsS "$base/tools/invoke" -H "Authorization: Bearer $token" \
  -d '{"tool":"read","args":{"path":"bench-1k.txt"}}' | python3 -c \
  'import json,sys; v=json.load(sys.stdin); assert v["ok"] and v["result"]["details"]["size"]==1024, v' >&2

cat > "$work/invoke.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"tool":"read","args":{"path":"bench-1k.txt"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

echo "== machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), nice $NICE"
for c in $CONNS; do
  echo "== wrk -t$THREADS -c$c -d$DURATION --latency -s invoke.lua $base/tools/invoke   (read 1 KiB)"
  nice -n "$NICE" wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$work/invoke.lua" "$base/tools/invoke"
  echo
  echo "== wrk -t$THREADS -c$c -d$DURATION --latency $base/healthz   (no-op handler)"
  nice -n "$NICE" wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency "$base/healthz"
  echo
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
