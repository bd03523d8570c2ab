# shellcheck shell=bash
# Small helpers sourced by the scripts in this folder.

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_ensure PKG... — installs the Debian packages that are not installed yet; `apt-get update`
# runs once per process, and only when something is missing.
apt_ensure() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "${CARAPACE_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    export CARAPACE_APT_UPDATED=1
  fi
  echo "==> installing ${missing[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
