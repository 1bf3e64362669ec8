#!/usr/bin/env bash
# Debian packages the suite uses besides the API server's: podman, runc and mmdebstrap (the
# container image tests) and Lua 5.1 (the Argo CD health check). Needs root or sudo.
#   hack/tools.sh install
set -euo pipefail
need_root_or_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
case "${1:-}" in
  install)
    missing=0
    for c in podman runc mmdebstrap lua5.1; do command -v "$c" >/dev/null || missing=1; done
    [ "$missing" = 0 ] && exit 0
    need_root_or_sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive need_root_or_sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      podman runc mmdebstrap lua5.1 >/dev/null ;;
  *) sed -n '2,4p' "$0" >&2; exit 2 ;;
esac
