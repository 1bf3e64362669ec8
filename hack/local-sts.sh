#!/usr/bin/env bash
# The local AWS test server on loopback: moto (STS, IAM) from PyPI, with EKS access entries in
# front of it (hack/local-aws/: the server, and its own tests against boto3).
#
#   hack/local-sts.sh install     create the test virtualenv with moto (hack/python-env.sh)
#   hack/local-sts.sh up DIR      start it on a free port; its URL goes to DIR/sts-endpoint
#   hack/local-sts.sh env DIR     print the exports the tests read (AWS_AUTH_TEST_STS_ENDPOINT,
#                                 AWS_AUTH_TEST_EKS_ENDPOINT: the same server)
#   hack/local-sts.sh test        run the server's own tests (boto3 against it)
#   hack/local-sts.sh down DIR    stop it
#
# AWS_AUTH_TEST_EKS_RATE / AWS_AUTH_TEST_EKS_BURST size EKS's token bucket (10/s, burst 20).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${2:-${TMPDIR:-/tmp}/aws-auth-operator-sts}"

log() { printf 'local-sts: %s\n' "$*" >&2; }

install() { "$HERE/python-env.sh" install; }

up() {
  install
  mkdir -p "$DIR"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  setsid "$("$HERE/python-env.sh" python)" "$HERE/local-aws/server.py" --port "$port" >"$DIR/moto.log" 2>&1 </dev/null &
  echo $! >"$DIR/moto.pid"
  local i
  for i in $(seq 1 100); do
    if curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port" >"$DIR/sts-endpoint"
      log "ready: http://127.0.0.1:$port"
      return
    fi
    sleep 0.2
  done
  log "moto did not start:"; tail -20 "$DIR/moto.log" >&2; return 1
}

down() {
  [ -f "$DIR/moto.pid" ] && kill "$(cat "$DIR/moto.pid")" 2>/dev/null || true
  rm -f "$DIR/moto.pid" "$DIR/sts-endpoint" "$DIR/moto.log"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  env)
    printf 'export AWS_AUTH_TEST_STS_ENDPOINT=%q\nexport AWS_AUTH_TEST_EKS_ENDPOINT=%q\n' \
      "$(cat "$DIR/sts-endpoint")" "$(cat "$DIR/sts-endpoint")"
    ;;
  test)
    install
    "$("$HERE/python-env.sh" python)" -m unittest discover -s "$HERE/local-aws" -p 'test_*.py'
    ;;
  down) down ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
