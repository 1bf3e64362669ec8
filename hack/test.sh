#!/usr/bin/env bash
# The whole test suite: unit, property, CLI and real-API-server tests.
# Starts a private kube-apiserver + etcd (hack/local-cluster.sh) for the run and stops it after.
# Extra arguments go to `cargo test` (e.g. `hack/test.sh controller` to filter).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-test.XXXXXX")"
trap 'hack/local-cluster.sh down "$dir"' EXIT
hack/local-cluster.sh up "$dir"
eval "$(hack/local-cluster.sh env "$dir")"
cargo test --all-targets -- "$@"
