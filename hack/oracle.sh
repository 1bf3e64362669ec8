#!/usr/bin/env bash
# The differential oracle: aws-iam-authenticator's own aws-auth parser and lookup (the Go module
# at the version in hack/oracle/go.mod, the one EKS runs), built from the Go module proxy.
#
#   hack/oracle.sh build    build it once (cached by the hash of its sources); print its path
#
# Cached under ${XDG_CACHE_HOME:-$HOME/.cache}/aws-auth-operator, outside any checkout; the Go
# module and build caches are Go's own (GOMODCACHE, GOCACHE). A cold build takes about two
# minutes on 2 cores, most of it downloading the authenticator's dependencies.
set -euo pipefail
cd "$(dirname "$0")/oracle"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aws-auth-operator"
log() { printf 'oracle: %s\n' "$*" >&2; }

case "${1:-}" in
  build)
    command -v go >/dev/null 2>&1 || { log "Go is needed (go.dev/dl, or Debian's golang)"; exit 1; }
    hash="$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)"
    bin="$CACHE/aws-auth-oracle-$hash"
    if [ ! -x "$bin" ]; then
      log "building aws-iam-authenticator's parser ($(grep 'sigs.k8s.io/aws-iam-authenticator ' go.mod | awk '{print $2}')) into $bin"
      mkdir -p "$CACHE"
      GOFLAGS=-mod=readonly go build -trimpath -o "$bin.tmp" .
      mv "$bin.tmp" "$bin"
    fi
    echo "$bin"
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
