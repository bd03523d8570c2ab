# shellcheck shell=bash
# A Synapse homeserver on loopback for carapace's Matrix tests and benchmark.
#
# Contract (sourced, never executed: `source scripts/synapse.sh`, as scripts/test.sh does):
# - Uses the venv at $CARAPACE_SYNAPSE_VENV (default /opt/synapse-venv); when it lacks
#   `matrix-synapse`, creates it (`python3 -m venv`, installing python3-venv first if needed)
#   and `pip install matrix-synapse` from PyPI. Idempotent.
# - Generates a config in a fresh temp dir ($CARAPACE_SYNAPSE_DIR): server name `localhost`,
#   one plain-HTTP listener on 127.0.0.1 and a free port (client + media resources), SQLite,
#   no federation (no key servers, empty federation whitelist), registration by shared secret
#   only, rate limits relaxed, max_upload_size 1G, authenticated media on.
# - Starts it in the background (log: $CARAPACE_SYNAPSE_DIR/homeserver.log) and waits up to
#   90 s for `GET /_matrix/client/versions`.
# - Registers two users with `register_new_matrix_user` and the shared secret: `carapace-bot`
#   (admin; the account carapace sends as) and `alice` (a person to DM), logs both in, and
#   writes `$CARAPACE_SYNAPSE_DIR/users.json`:
#     {"url": "...", "serverName": "localhost",
#      "bot":   {"userId": "@carapace-bot:localhost", "accessToken": "...", "password": "..."},
#      "alice": {"userId": "@alice:localhost", "accessToken": "...", "password": "..."}}
# - Exports CARAPACE_TEST_SYNAPSE_URL (base URL, no trailing slash) and
#   CARAPACE_TEST_SYNAPSE_USERS (path of users.json), and CARAPACE_SYNAPSE_PID.
# - `carapace_synapse_stop` stops the server this script started.
# - When CARAPACE_TEST_SYNAPSE_URL is already set and answers, does nothing.
# - Returns non-zero (never `exit`s the caller) when the server cannot be made to answer.

if ! declare -F apt_ensure >/dev/null; then
  # shellcheck source=scripts/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

CARAPACE_SYNAPSE_VENV=${CARAPACE_SYNAPSE_VENV:-/opt/synapse-venv}

_carapace_synapse_installed() {
  [ -x "$CARAPACE_SYNAPSE_VENV/bin/python" ] &&
    "$CARAPACE_SYNAPSE_VENV/bin/python" -c 'import synapse' >/dev/null 2>&1 &&
    [ -x "$CARAPACE_SYNAPSE_VENV/bin/register_new_matrix_user" ]
}

_carapace_synapse_install() {
  _carapace_synapse_installed && return 0
  echo "==> installing matrix-synapse into $CARAPACE_SYNAPSE_VENV" >&2
  apt_ensure python3 python3-venv curl
  if [ ! -x "$CARAPACE_SYNAPSE_VENV/bin/python" ]; then
    as_root python3 -m venv "$CARAPACE_SYNAPSE_VENV" || return 1
  fi
  as_root "$CARAPACE_SYNAPSE_VENV/bin/pip" install -q --upgrade pip >/dev/null || return 1
  as_root "$CARAPACE_SYNAPSE_VENV/bin/pip" install -q matrix-synapse >/dev/null || return 1
  _carapace_synapse_installed
}

_carapace_synapse_login() { # URL USER PASSWORD -> access token on stdout
  curl -fsS -X POST "$1/_matrix/client/v3/login" -H 'Content-Type: application/json' \
    -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"$2\"},\"password\":\"$3\"}" |
    "$CARAPACE_SYNAPSE_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

carapace_synapse_stop() {
  if [ -n "${CARAPACE_SYNAPSE_PID:-}" ]; then
    kill "$CARAPACE_SYNAPSE_PID" 2>/dev/null || true
    unset CARAPACE_SYNAPSE_PID
  fi
}

_carapace_synapse_start() {
  if [ -n "${CARAPACE_TEST_SYNAPSE_URL:-}" ] &&
    curl -fsS "$CARAPACE_TEST_SYNAPSE_URL/_matrix/client/versions" >/dev/null 2>&1; then
    return 0
  fi
  _carapace_synapse_install || { echo "synapse.sh: could not install matrix-synapse" >&2; return 1; }
  apt_ensure curl
  local py="$CARAPACE_SYNAPSE_VENV/bin/python"
  local dir port secret url
  dir=$(mktemp -d /tmp/carapace-synapse.XXXXXX)
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  secret=$("$py" -c 'import secrets; print(secrets.token_hex(24))')
  url="http://127.0.0.1:$port"
  cat >"$dir/homeserver.yaml" <<YAML
server_name: "localhost"
public_baseurl: "$url/"
pid_file: "$dir/homeserver.pid"
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client, media]
        compress: false
database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"
log_config: "$dir/log.yaml"
media_store_path: "$dir/media_store"
signing_key_path: "$dir/localhost.signing.key"
registration_shared_secret: "$secret"
enable_registration: false
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
enable_authenticated_media: true
max_upload_size: 1G
url_preview_enabled: false
presence:
  enabled: false
rc_message: {per_second: 10000, burst_count: 10000}
rc_registration: {per_second: 10000, burst_count: 10000}
rc_login:
  address: {per_second: 10000, burst_count: 10000}
  account: {per_second: 10000, burst_count: 10000}
  failed_attempts: {per_second: 10000, burst_count: 10000}
rc_joins:
  local: {per_second: 10000, burst_count: 10000}
  remote: {per_second: 10000, burst_count: 10000}
rc_invites:
  per_room: {per_second: 10000, burst_count: 10000}
  per_user: {per_second: 10000, burst_count: 10000}
  per_issuer: {per_second: 10000, burst_count: 10000}
rc_media_create: {per_second: 10000, burst_count: 10000}
YAML
  cat >"$dir/log.yaml" <<YAML
version: 1
formatters:
  precise: {format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'}
handlers:
  file: {class: logging.FileHandler, formatter: precise, filename: "$dir/homeserver.log"}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
YAML
  "$py" -m synapse.app.homeserver -c "$dir/homeserver.yaml" --generate-keys >/dev/null 2>&1 || {
    echo "synapse.sh: key generation failed" >&2; return 1; }
  (cd "$dir" && exec "$py" -m synapse.app.homeserver -c "$dir/homeserver.yaml" \
    >>"$dir/stdout.log" 2>&1) &
  CARAPACE_SYNAPSE_PID=$!
  export CARAPACE_SYNAPSE_PID CARAPACE_SYNAPSE_DIR="$dir"
  local i
  for i in $(seq 1 180); do
    curl -fsS "$url/_matrix/client/versions" >/dev/null 2>&1 && break
    if ! kill -0 "$CARAPACE_SYNAPSE_PID" 2>/dev/null; then
      echo "synapse.sh: synapse exited; see $dir/stdout.log and $dir/homeserver.log" >&2
      return 1
    fi
    sleep 0.5
  done
  curl -fsS "$url/_matrix/client/versions" >/dev/null 2>&1 || {
    echo "synapse.sh: synapse did not answer within 90 s" >&2; return 1; }
  local bot_pw alice_pw
  bot_pw=$("$py" -c 'import secrets; print(secrets.token_hex(12))')
  alice_pw=$("$py" -c 'import secrets; print(secrets.token_hex(12))')
  "$CARAPACE_SYNAPSE_VENV/bin/register_new_matrix_user" -u carapace-bot -p "$bot_pw" -a \
    -k "$secret" "$url" >/dev/null || return 1
  "$CARAPACE_SYNAPSE_VENV/bin/register_new_matrix_user" -u alice -p "$alice_pw" --no-admin \
    -k "$secret" "$url" >/dev/null || return 1
  local bot_tok alice_tok
  bot_tok=$(_carapace_synapse_login "$url" carapace-bot "$bot_pw") || return 1
  alice_tok=$(_carapace_synapse_login "$url" alice "$alice_pw") || return 1
  cat >"$dir/users.json" <<JSON
{"url": "$url", "serverName": "localhost",
 "bot": {"userId": "@carapace-bot:localhost", "accessToken": "$bot_tok", "password": "$bot_pw"},
 "alice": {"userId": "@alice:localhost", "accessToken": "$alice_tok", "password": "$alice_pw"}}
JSON
  chmod 600 "$dir/users.json"
  export CARAPACE_TEST_SYNAPSE_URL="$url" CARAPACE_TEST_SYNAPSE_USERS="$dir/users.json"
  echo "==> synapse on $url (users: $dir/users.json)" >&2
}

_carapace_synapse_start
