# shellcheck shell=bash
# The official MCP Python SDK (PyPI package `mcp`) in a cached venv, for the tests that check
# what a real MCP client shows for carapace's `/mcp` answers (bad token, bad session, …).
#
# Contract (sourced, never executed: `source scripts/mcp-python.sh`, as scripts/test.sh does):
# - Uses the venv at $CARAPACE_MCP_PYTHON_VENV (default /opt/mcp-python-venv); when it lacks the
#   `mcp` package, creates it (`python3 -m venv`, installing python3-venv first if needed) and
#   `pip install mcp` from PyPI. Idempotent: a venv that already imports `mcp` is left alone.
# - Exports CARAPACE_TEST_MCP_PYTHON, the venv's python (tests run it with a script of theirs).
# - Returns non-zero (never `exit`s the caller) when the SDK cannot be installed.

if ! declare -F apt_ensure >/dev/null; then
  # shellcheck source=scripts/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

CARAPACE_MCP_PYTHON_VENV=${CARAPACE_MCP_PYTHON_VENV:-/opt/mcp-python-venv}

_carapace_mcp_python_installed() {
  [ -x "$CARAPACE_MCP_PYTHON_VENV/bin/python" ] &&
    "$CARAPACE_MCP_PYTHON_VENV/bin/python" -c 'import mcp.client.streamable_http' >/dev/null 2>&1
}

_carapace_mcp_python_install() {
  _carapace_mcp_python_installed && return 0
  echo "==> installing the MCP Python SDK into $CARAPACE_MCP_PYTHON_VENV" >&2
  apt_ensure python3 python3-venv
  if [ ! -x "$CARAPACE_MCP_PYTHON_VENV/bin/python" ]; then
    as_root python3 -m venv "$CARAPACE_MCP_PYTHON_VENV" || return 1
  fi
  as_root "$CARAPACE_MCP_PYTHON_VENV/bin/pip" install -q --upgrade pip >/dev/null || return 1
  as_root "$CARAPACE_MCP_PYTHON_VENV/bin/pip" install -q mcp >/dev/null || return 1
  _carapace_mcp_python_installed
}

if _carapace_mcp_python_install; then
  export CARAPACE_TEST_MCP_PYTHON="$CARAPACE_MCP_PYTHON_VENV/bin/python"
else
  echo "mcp-python.sh: could not install the MCP Python SDK" >&2
  false
fi
