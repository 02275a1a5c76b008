#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, unit/integration/UI/doc tests, and a check
# that every example prints what its header says. Run from anywhere: `bash tests/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p slipstream -p slipstream-core -p slipstream-macros

echo "== examples"
bash tests/examples.sh

echo "all tests passed"
