#!/usr/bin/env bash
# The whole test suite: unit, property, CLI, real-API-server, STS-protocol, Helm-chart, Argo CD
# health (Lua) and container-image tests.
#
#   hack/test.sh [ARGS]                   everything, on the newest Kubernetes EKS supports
#   hack/test.sh --api-server-only [ARGS] only the test binaries that use the API server
#   K8S_VERSION=v1.32.13 hack/test.sh     on another version (hack/local-cluster.sh oldest|newest)
#
# Installs what a fresh machine lacks (each step does nothing when it is there), starts a private
# kube-apiserver + etcd (hack/local-cluster.sh) and moto's STS (hack/local-sts.sh) for the run and
# stops them after; builds the authenticator's parser for the differential tests (hack/oracle.sh).
# The Go builds run while the Rust tests compile. Extra arguments go to the test binaries (e.g.
# `hack/test.sh sigkill` to filter).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(--all-targets)
if [ "${1:-}" = --api-server-only ]; then
  shift
  targets=()
  for t in $(grep -l '^mod support' tests/*.rs); do
    targets+=(--test "$(basename "$t" .rs)")
  done
fi
hack/python-env.sh install
hack/tools.sh install
logs="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-builds.XXXXXX")"
# kube-apiserver and the oracle (Go) build while cargo compiles; each prints its log on failure.
hack/local-cluster.sh install >"$logs/apiserver" 2>&1 &
apiserver_build=$!
hack/oracle.sh build >"$logs/oracle-path" 2>"$logs/oracle" &
oracle_build=$!
cargo test "${targets[@]}" --no-run
wait "$apiserver_build" || { cat "$logs/apiserver" >&2; exit 1; }
wait "$oracle_build" || { cat "$logs/oracle" >&2; exit 1; }
AWS_AUTH_TEST_ORACLE="$(cat "$logs/oracle-path")"
export AWS_AUTH_TEST_ORACLE
rm -rf "$logs"
dir="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-test.XXXXXX")"
trap 'hack/local-sts.sh down "$dir"; hack/local-cluster.sh down "$dir"' EXIT
hack/local-cluster.sh up "$dir"
hack/local-sts.sh up "$dir"
# The local AWS server's own tests (boto3 against it), so that it stays faithful to EKS.
if [ "${#targets[@]}" -gt 0 ] && [ "${targets[0]}" = --all-targets ]; then
  hack/local-sts.sh test
fi
eval "$(hack/local-cluster.sh env "$dir")"
eval "$(hack/local-sts.sh env "$dir")"
AWS_AUTH_TEST_PYTHON="$(hack/python-env.sh python)"
export AWS_AUTH_TEST_PYTHON
# The container image the image tests run (release binary, local Debian base; see hack/image.sh).
AWS_AUTH_TEST_IMAGE="$(hack/image.sh build)"
export AWS_AUTH_TEST_IMAGE
cargo test --no-fail-fast "${targets[@]}" -- "$@"
