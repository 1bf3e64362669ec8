#!/usr/bin/env bash
# A real kube-apiserver + etcd on loopback for the integration tests: upstream kube-apiserver built
# from the k8s.io/kubernetes Go module, etcd from Debian.
#
#   hack/local-cluster.sh install     build and cache kube-apiserver and kubectl, install etcd
#                                     (idempotent)
#   hack/local-cluster.sh up [DIR]    start etcd + kube-apiserver on free ports; writes DIR/kubeconfig
#   hack/local-cluster.sh env [DIR]   print the exports the tests read (KUBECONFIG,
#                                     AWS_AUTH_TEST_CLUSTER, AWS_AUTH_TEST_KUBECTL)
#   hack/local-cluster.sh down [DIR]  stop both and remove DIR
#   hack/local-cluster.sh stop|start etcd|apiserver DIR   stop or restart one (the fault tests)
#   hack/local-cluster.sh newest|oldest   print the versions the suite runs on
#
# DIR defaults to ${TMPDIR:-/tmp}/aws-auth-operator-cluster. The build (about 3 minutes on 2 cores)
# is cached per version under ${XDG_CACHE_HOME:-$HOME/.cache}/aws-auth-operator, outside any
# checkout.
set -euo pipefail

# The Kubernetes versions the suite runs on (EKS's calendar, December 2026): the newest EKS
# supports, and the oldest still in its extended support. K8S_VERSION picks any version the Go
# module proxy serves.
NEWEST=v1.37.2
OLDEST=v1.32.13
K8S_VERSION="${K8S_VERSION:-$NEWEST}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aws-auth-operator"
APISERVER="$CACHE/kube-apiserver-$K8S_VERSION"
KUBECTL="$CACHE/kubectl-$K8S_VERSION"
DIR="${2:-${TMPDIR:-/tmp}/aws-auth-operator-cluster}"

log() { printf 'local-cluster: %s\n' "$*" >&2; }

need_root_or_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_etcd() {
  command -v etcd >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 &&
    command -v openssl >/dev/null 2>&1 && return
  log "installing etcd-server, curl and openssl from Debian"
  need_root_or_sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive need_root_or_sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq etcd-server curl openssl >/dev/null
}

# The version the server reports (/version; Helm's kubeVersion checks, the operator's feature
# checks), which `make` would stamp.
version_flags() {
  local minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local v=k8s.io/component-base/version
  printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean' \
    "$v" "$K8S_VERSION" "$v" "$v" "$minor" "$v"
}

# An upstream command (kube-apiserver, kubectl) from the k8s.io/kubernetes Go module: a scratch
# module requiring it, its staging modules (./staging in its own go.mod) replaced by their
# published v0.X.Y.
build_from_module() {
  local cmd="$1" out="$2"
  command -v go >/dev/null 2>&1 || { log "Go is needed to build $cmd $K8S_VERSION"; exit 1; }
  log "building $cmd $K8S_VERSION from the k8s.io/kubernetes Go module (cached in $CACHE)"
  local work staging_version mod
  work="$(mktemp -d "${TMPDIR:-/tmp}/$cmd-build.XXXXXX")"
  staging_version="v0.${K8S_VERSION#v1.}"
  (
    cd "$work"
    mod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    {
      printf 'module local/%s\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
        "$cmd" "$(sed -n 's/^go //p' "$mod")" "$K8S_VERSION"
      sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging.*#\t\1 => \1 '"$staging_version"'#p' "$mod"
      printf ')\n'
    } >go.mod
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/$cmd@$K8S_VERSION" >"$work/build.log" 2>&1 &&
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" \
        -ldflags "$(version_flags)" "k8s.io/kubernetes/cmd/$cmd" >>"$work/build.log" 2>&1 ||
      { tail -40 "$work/build.log" >&2; exit 1; }
    mv "$out.tmp" "$out"
  )
  rm -rf "$work"
  log "built $out"
}

build_apiserver() {
  mkdir -p "$CACHE"
  [ -x "$APISERVER" ] || build_from_module kube-apiserver "$APISERVER"
  # kubectl of the same version, for the tests that run what a user types.
  [ -x "$KUBECTL" ] || build_from_module kubectl "$KUBECTL"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() {
  local i
  for i in $(seq 1 120); do
    if curl -fsk -H "Authorization: Bearer admintoken" "https://127.0.0.1:$1/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  log "kube-apiserver did not become ready; last log lines:"
  tail -30 "$DIR/apiserver.log" >&2
  return 1
}

# Starts (again) one component of the running cluster: etcd or apiserver.
start() {
  # exec: the recorded pid is the component's own, not a shell's.
  eval "exec setsid $(cat "$DIR/$1.cmd")" >>"$DIR/$1.log" 2>&1 </dev/null &
  echo $! >"$DIR/$1.pid"
}

# Stops one component (SIGTERM, then SIGKILL), leaving its data for `start`.
stop() {
  local pid i
  pid="$(cat "$DIR/$1.pid")"
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

up() {
  install_etcd
  build_apiserver
  if [ -f "$DIR/apiserver.pid" ] && kill -0 "$(cat "$DIR/apiserver.pid")" 2>/dev/null; then
    log "already running in $DIR"
    return
  fi
  rm -rf "$DIR" && mkdir -p "$DIR/certs"
  local etcd_port peer_port api_port
  etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)
  openssl genrsa -out "$DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$DIR/sa.key" -pubout -out "$DIR/sa.pub" 2>/dev/null
  echo 'admintoken,admin,admin,system:masters' >"$DIR/tokens.csv"
  # Each command is kept, so that the fault tests can stop and start one on the same ports.
  # No endpoint reconciler: from 1.37 it refuses a loopback advertise address, and no test needs
  # the `kubernetes` Service's endpoints.
  printf '%q ' etcd --data-dir "$DIR/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" >"$DIR/etcd.cmd"
  printf '%q ' "$APISERVER" --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 --secure-port="$api_port" --cert-dir="$DIR/certs" \
    --token-auth-file="$DIR/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$DIR/sa.pub" --service-account-signing-key-file="$DIR/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none >"$DIR/apiserver.cmd"
  echo "$api_port" >"$DIR/apiserver.port"
  start etcd
  start apiserver
  cat >"$DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: admintoken
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
  wait_ready "$api_port"
  log "ready: https://127.0.0.1:$api_port (kubeconfig $DIR/kubeconfig)"
}

down() {
  # Each stopped and waited for (a kube-apiserver without its etcd can linger in shutdown).
  local p
  for p in apiserver etcd; do
    if [ -f "$DIR/$p.pid" ]; then
      stop "$p"
    fi
  done
  rm -rf "$DIR"
}

case "${1:-}" in
  install) install_etcd; build_apiserver ;;
  up) up ;;
  newest) echo "$NEWEST" ;;
  oldest) echo "$OLDEST" ;;
  env)
    printf 'export KUBECONFIG=%q\nexport AWS_AUTH_TEST_CLUSTER=1\nexport AWS_AUTH_TEST_KUBECTL=%q\n' \
      "$DIR/kubeconfig" "$KUBECTL"
    ;;
  down) down ;;
  stop) DIR="${3:?DIR}"; stop "${2:?etcd or apiserver}" ;;
  start)
    DIR="${3:?DIR}"; start "${2:?etcd or apiserver}"
    if [ "$2" = apiserver ]; then wait_ready "$(cat "$DIR/apiserver.port")"; fi
    ;;
  *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
