#!/usr/bin/env bash
# Static checks: formatting, lints, and that the committed CRD matches the Rust types.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo run --quiet -- crd | diff -u crds/iamaccessgrants.aws-auth.dev.yaml - ||
  { echo "crds/ is stale: run \`cargo run -- crd > crds/iamaccessgrants.aws-auth.dev.yaml\`" >&2; exit 1; }
