#!/usr/bin/env bash
# `migrate apply` of N aws-auth entries (default 1,000) onto access entries, against the local EKS
# server throttling as EKS does (a token bucket per operation: AWS_AUTH_TEST_EKS_RATE requests/s,
# burst AWS_AUTH_TEST_EKS_BURST; 10 and 20 by default). Prints the time, the rate reached per
# operation against the allowed one, throttled answers and calls per entry.
#
#   hack/bench-migrate.sh [N]       (AWS_AUTH_BENCH_BIN: the binary; default a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
rate="${AWS_AUTH_TEST_EKS_RATE:-10}"
burst="${AWS_AUTH_TEST_EKS_BURST:-20}"
bin="${AWS_AUTH_BENCH_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/aws-auth-operator"
fi
hack/python-env.sh install
python="$(hack/python-env.sh python)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/aws-auth-operator-bench-migrate.XXXXXX")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AWS_AUTH_TEST_EKS_RATE="$rate" AWS_AUTH_TEST_EKS_BURST="$burst" \
  "$python" hack/local-aws/server.py --port "$port" >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$url/moto-api/" >/dev/null 2>&1 && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ENDPOINT_URL_EKS="$url"
"$python" - "$n" "$dir/aws-auth.json" <<'PY'
import json, sys, boto3
n, out = int(sys.argv[1]), sys.argv[2]
boto3.client("eks").create_cluster(
    name="bench", roleArn="arn:aws:iam::111122223333:role/eks", resourcesVpcConfig={},
    accessConfig={"authenticationMode": "API_AND_CONFIG_MAP",
                  "bootstrapClusterCreatorAdminPermissions": False})
roles = "".join(
    f'- rolearn: "arn:aws:iam::111122223333:role/r{i:05}"\n  username: "r{i}:{{{{SessionName}}}}"\n'
    f'  groups: [{"system:masters" if i % 100 == 0 else f"team-{i % 10}"!r}]\n'.replace("'", '"')
    for i in range(n))
json.dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth"},
           "data": {"mapRoles": roles}}, open(out, "w"))
PY
curl -fsS -X POST "$url/_local_eks/reset-stats" >/dev/null
start=$(date +%s.%N)
"$bin" migrate apply --cluster-name bench --aws-auth "$dir/aws-auth.json" >"$dir/out.txt" 2>"$dir/err.txt" ||
  { tail -20 "$dir/out.txt" "$dir/err.txt" >&2; exit 1; }
end=$(date +%s.%N)
curl -fsS "$url/_local_eks/stats" >"$dir/stats.json"
"$python" - "$n" "$rate" "$start" "$end" "$dir/stats.json" "$dir/out.txt" <<'PY'
import json, sys
n, rate, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = json.load(open(sys.argv[5]))
print(f"migrate apply of {n} entries: {end - start:.1f} s; bucket {rate:g}/s per operation")
print(f"{'operation':32} {'calls':>7} {'throttled':>9} {'per entry':>9} {'rate/s':>8} {'of allowed':>10}")
for op in sorted(s["calls"]):
    calls, thr = s["calls"][op], s["throttled"].get(op, 0)
    ok, secs = calls - thr, s["seconds"].get(op, 0)
    r = (ok - 1) / secs if secs > 0 else float("nan")
    print(f"{op:32} {calls:>7} {thr:>9} {calls / n:>9.3f} {r:>8.2f} {r / rate:>10.0%}")
print(open(sys.argv[6]).read().strip().splitlines()[-4])
PY
