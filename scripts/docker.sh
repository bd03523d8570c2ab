# shellcheck shell=bash
# A Docker engine and a local test image for carapace's docker-backend tests and benchmarks.
#
# Contract (sourced, never executed: `source scripts/docker.sh`, as scripts/test.sh does):
# - Installs the Debian packages `docker.io` and `busybox-static` when they are missing
#   (`apt-get update` runs first only when something must be installed). Idempotent.
# - When `DOCKER_HOST` is unset and /var/run/docker.sock does not answer, starts `dockerd` in the
#   background (log: $CARAPACE_DOCKERD_LOG, a temp file) and waits up to 60 s for it. A daemon
#   that already answers is used as it is; one named by `DOCKER_HOST` is never started here.
# - Imports `carapace-test:busybox` (`docker import` of a tiny rootfs: a static /bin/busybox
#   with a symlink for every applet, /etc/passwd and /etc/group with root, nobody and the
#   invoking uid) unless an image of that name and of the current layout version is present.
#   No registry is needed or contacted.
# - Exports CARAPACE_TEST_DOCKER_IMAGE=carapace-test:busybox for the tests.
# - Returns non-zero (never `exit`s the caller) when the engine cannot be made to answer.

if ! declare -F apt_ensure >/dev/null; then
  # shellcheck source=scripts/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

CARAPACE_TEST_DOCKER_IMAGE=${CARAPACE_TEST_DOCKER_IMAGE:-carapace-test:busybox}
# Bump when the rootfs layout below changes: an older image of the same name is re-imported.
_CARAPACE_TEST_IMAGE_VERSION=3

_carapace_docker() {
  if [ -n "${DOCKER_HOST:-}" ] || [ "$(id -u)" = 0 ]; then docker "$@"; else as_root docker "$@"; fi
}

_carapace_docker_answers() {
  _carapace_docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

_carapace_docker_start() {
  if _carapace_docker_answers; then return 0; fi
  if [ -n "${DOCKER_HOST:-}" ]; then
    echo "docker.sh: DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd" >&2
    return 1
  fi
  CARAPACE_DOCKERD_LOG=${CARAPACE_DOCKERD_LOG:-$(mktemp /tmp/carapace-dockerd.XXXXXX.log)}
  export CARAPACE_DOCKERD_LOG
  echo "==> starting dockerd (log: $CARAPACE_DOCKERD_LOG)" >&2
  as_root sh -c 'nohup dockerd >>"$1" 2>&1 </dev/null &' sh "$CARAPACE_DOCKERD_LOG"
  local i
  for i in $(seq 1 120); do
    if _carapace_docker_answers; then return 0; fi
    sleep 0.5
  done
  echo "docker.sh: dockerd did not answer within 60 s; last lines of $CARAPACE_DOCKERD_LOG:" >&2
  tail -n 20 "$CARAPACE_DOCKERD_LOG" >&2 || true
  return 1
}

_carapace_docker_image() {
  local have
  have=$(_carapace_docker image inspect "$CARAPACE_TEST_DOCKER_IMAGE" \
    --format '{{index .Config.Labels "carapace.test-image"}}' 2>/dev/null || true)
  if [ "$have" = "$_CARAPACE_TEST_IMAGE_VERSION" ]; then return 0; fi
  echo "==> importing $CARAPACE_TEST_DOCKER_IMAGE" >&2
  local root bb uid gid applet rc=0
  root=$(mktemp -d /tmp/carapace-rootfs.XXXXXX)
  bb=$(command -v busybox || echo /bin/busybox)
  uid=$(id -u)
  gid=$(id -g)
  mkdir -p "$root"/{bin,etc,tmp,var/tmp,run,proc,sys,dev}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  {
    echo "root:x:0:0:root:/root:/bin/sh"
    echo "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh"
    if [ "$uid" != 0 ] && [ "$uid" != 65534 ]; then
      echo "carapace:x:$uid:$gid:carapace:/workspace:/bin/sh"
    fi
  } >"$root/etc/passwd"
  {
    echo "root:x:0:"
    echo "nogroup:x:65534:"
    if [ "$gid" != 0 ] && [ "$gid" != 65534 ]; then echo "carapace:x:$gid:"; fi
  } >"$root/etc/group"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
    _carapace_docker import \
      --change "LABEL carapace.test-image=$_CARAPACE_TEST_IMAGE_VERSION" \
      --change 'CMD ["/bin/sh"]' \
      - "$CARAPACE_TEST_DOCKER_IMAGE" >/dev/null || rc=$?
  rm -rf "$root"
  return "$rc"
}

apt_ensure docker.io busybox-static &&
  _carapace_docker_start &&
  _carapace_docker_image &&
  export CARAPACE_TEST_DOCKER_IMAGE
