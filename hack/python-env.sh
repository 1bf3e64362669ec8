#!/usr/bin/env bash
# A cached virtualenv with the test-only Python tools (moto for STS, helm-python-sdk for the real
# Helm engine), keyed by hack/python-requirements.txt.
#
#   hack/python-env.sh install   create it if needed (idempotent)
#   hack/python-env.sh python    print the path of its python
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aws-auth-operator"
KEY=$(sha256sum hack/python-requirements.txt | cut -c1-12)
VENV="$CACHE/venv-$KEY"

install() {
  [ -f "$VENV/.complete" ] && return
  echo "python-env: installing test tools into $VENV" >&2
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" -eq 0 ]; then apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv >/dev/null
    else sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv >/dev/null; fi
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q -r hack/python-requirements.txt
  touch "$VENV/.complete"
}

case "${1:-}" in
  install) install ;;
  python) echo "$VENV/bin/python" ;;
  *) sed -n '2,7p' "$0" >&2; exit 2 ;;
esac
