#!/usr/bin/env bash
# Benchmarks, release builds: the plan alone (no cluster), then convergence against a private
# kube-apiserver + etcd started for the run (hack/local-cluster.sh), onto aws-auth and onto access
# entries (the local EKS server, hack/local-sts.sh). Prints figures; see
# BENCHMARKS.md for the last results and the machine they came from.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/shipped-build.sh
. hack/shipped-build.sh
cargo bench --bench plan
dir="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-bench.XXXXXX")"
trap 'hack/local-sts.sh down "$dir"; hack/local-cluster.sh down "$dir"' EXIT
hack/local-cluster.sh up "$dir"
hack/local-sts.sh up "$dir"
eval "$(hack/local-cluster.sh env "$dir")"
eval "$(hack/local-sts.sh env "$dir")"
cargo bench --bench convergence
# 1,000 grants onto access entries, within the local EKS server's rate limits.
cargo bench --bench entries
