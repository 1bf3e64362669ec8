#!/usr/bin/env bash
# Benchmarks, release builds: the plan alone (no cluster), then convergence against a private
# kube-apiserver + etcd started for the run (hack/local-cluster.sh). Prints figures; see
# BENCHMARKS.md for the last results and the machine they came from.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/shipped-build.sh
. hack/shipped-build.sh
cargo bench --bench plan
dir="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-bench.XXXXXX")"
trap 'hack/local-cluster.sh down "$dir"' EXIT
hack/local-cluster.sh up "$dir"
eval "$(hack/local-cluster.sh env "$dir")"
cargo bench --bench convergence
