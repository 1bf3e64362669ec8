#!/usr/bin/env bash
# The container image, built and run locally with podman (no registry needed).
#   hack/image.sh base      the runtime base the Dockerfile names, assembled from Debian packages
#                           and tagged gcr.io/distroless/cc-debian12:nonroot (skipped if present)
#   hack/image.sh build     release binary + `podman build --build-arg BINARY=prebuilt`; prints the tag
# Elsewhere, `docker build .` builds the same image from the real bases. podman, runc and
# mmdebstrap come from Debian (hack/tools.sh install).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/hack/containers.conf"
BASE=gcr.io/distroless/cc-debian12:nonroot
TAG=localhost/aws-auth-operator:test

need_root_or_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

base() {
  podman image exists "$BASE" && return
  local tmp; tmp="$(mktemp -d)"
  # What the distroless cc image holds that the operator needs: glibc, libgcc, CA certificates,
  # and the nonroot user (65532). A full Debian userland stands in for the rest.
  need_root_or_sudo mmdebstrap --quiet --variant=essential --include=ca-certificates,libgcc-s1 \
    --customize-hook='echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "nonroot:x:65532:" >> "$1/etc/group"' \
    --customize-hook='mkdir -p "$1/home/nonroot" && chown 65532:65532 "$1/home/nonroot"' \
    --mode=root bookworm "$tmp/base.tar"
  podman import --quiet "$tmp/base.tar" "$BASE" >/dev/null
  need_root_or_sudo rm -rf "$tmp"
}

build() {
  base
  # shellcheck source=hack/shipped-build.sh
  . hack/shipped-build.sh
  cargo build --quiet --release --locked --bin aws-auth-operator
  local target="$CARGO_TARGET_DIR" ctx
  ctx="$(mktemp -d)"
  strip -o "$ctx/aws-auth-operator" "$target/release/aws-auth-operator"
  podman build --quiet --build-arg BINARY=prebuilt -f "$PWD/Dockerfile" -t "$TAG" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "$TAG"
}

case "${1:-}" in
  base) base ;;
  build) build ;;
  *) echo "usage: $0 base|build" >&2; exit 2 ;;
esac
