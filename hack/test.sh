#!/usr/bin/env bash
# The whole test suite: unit, property, CLI, real-API-server, STS-protocol, Helm-chart, Argo CD
# health (Lua) and container-image tests.
# Starts a private kube-apiserver + etcd (hack/local-cluster.sh) and moto's STS
# (hack/local-sts.sh) for the run and stops them after; builds the authenticator's parser for the
# differential tests (hack/oracle.sh).
# Extra arguments go to the test binaries (e.g. `hack/test.sh sigkill` to filter).
set -euo pipefail
cd "$(dirname "$0")/.."
# What a fresh machine lacks is installed first (each step does nothing when it is there).
hack/local-cluster.sh install
hack/python-env.sh install
hack/tools.sh install
dir="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-test.XXXXXX")"
trap 'hack/local-sts.sh down "$dir"; hack/local-cluster.sh down "$dir"' EXIT
# The oracle builds (Go) while the servers start and the image builds (Rust); its path goes to a
# file of its own (starting the servers empties $dir).
oracle_path="$(mktemp "${TMPDIR:-/tmp}/aws-auth-oracle-path.XXXXXX")"
hack/oracle.sh build >"$oracle_path" &
oracle_build=$!
hack/local-cluster.sh up "$dir"
hack/local-sts.sh up "$dir"
eval "$(hack/local-cluster.sh env "$dir")"
eval "$(hack/local-sts.sh env "$dir")"
AWS_AUTH_TEST_PYTHON="$(hack/python-env.sh python)"
export AWS_AUTH_TEST_PYTHON
# The container image the image tests run (release binary, local Debian base; see hack/image.sh).
AWS_AUTH_TEST_IMAGE="$(hack/image.sh build)"
export AWS_AUTH_TEST_IMAGE
# aws-iam-authenticator's own parser, the differential tests' oracle (hack/oracle.sh).
wait "$oracle_build"
AWS_AUTH_TEST_ORACLE="$(cat "$oracle_path")"
rm -f "$oracle_path"
export AWS_AUTH_TEST_ORACLE
cargo test --all-targets -- "$@"
