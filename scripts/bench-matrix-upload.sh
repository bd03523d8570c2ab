#!/usr/bin/env bash
# Benchmark: upload of one file (default 256 MiB) to the local Synapse with
# `carapace message upload-file --channel matrix` against `curl` POSTing the same file to the
# same endpoint (/_matrix/media/v3/upload), in the same run; and carapace's peak RSS.
#   scripts/bench-matrix-upload.sh [SIZE_MIB] [RUNS]
# Needs a release build (cargo build --release -p carapace) and sources scripts/synapse.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SIZE_MIB=${1:-256}
RUNS=${2:-3}
BIN=${CARAPACE_BIN:-$ROOT/target/release/carapace}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p carapace" >&2; exit 2; }
# shellcheck source=scripts/synapse.sh
source scripts/synapse.sh
TOKEN=$("$CARAPACE_SYNAPSE_VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bot"]["accessToken"])' "$CARAPACE_TEST_SYNAPSE_USERS")
URL=$CARAPACE_TEST_SYNAPSE_URL
WORK=$(mktemp -d /tmp/carapace-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
STATE=$WORK/state
mkdir -p "$STATE/workspace"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$STATE/workspace/big.bin"
chmod 644 "$STATE/workspace/big.bin"
cat >"$WORK/c.json5" <<JSON
{ channels: { matrix: { homeserver: "$URL", accessToken: "\${BENCH_MX_TOKEN}", mediaMaxMb: $((SIZE_MIB * 2)) } } }
JSON
ROOM=$(curl -fsS -X POST "$URL/_matrix/client/v3/createRoom" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{}' | "$CARAPACE_SYNAPSE_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["room_id"])')
echo "file: ${SIZE_MIB} MiB; synapse: $URL; $(nproc) cores"
printf '%-10s %10s %12s %12s\n' run tool seconds MiB/s
for i in $(seq 1 "$RUNS"); do
  s=$(date +%s.%N)
  curl -fsS -o /dev/null -X POST "$URL/_matrix/media/v3/upload?filename=big.bin" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$STATE/workspace/big.bin"
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" -v m="$SIZE_MIB" -v i="$i" 'BEGIN{printf "%-10s %10s %12.2f %12.1f\n", i, "curl", e-s, m/(e-s)}'
  s=$(date +%s.%N)
  BENCH_MX_TOKEN=$TOKEN CARAPACE_STATE_DIR=$STATE /usr/bin/time -f '%M' -o "$WORK/rss" \
    "$BIN" --json --config "$WORK/c.json5" message upload-file --channel matrix \
    --target "room:$ROOM" --file-path /workspace/big.bin >"$WORK/out.json"
  e=$(date +%s.%N)
  rss=$(cat "$WORK/rss")
  awk -v s="$s" -v e="$e" -v m="$SIZE_MIB" -v i="$i" -v r="$rss" 'BEGIN{printf "%-10s %10s %12.2f %12.1f   peak RSS %.1f MiB\n", i, "carapace", e-s, m/(e-s), r/1024}'
done
