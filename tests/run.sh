#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, unit/integration/UI/doc tests, and a check
# that every example prints what its header says. Run from anywhere: `bash tests/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
# The suite's applications choose their own admin server addresses.
unset SLIPSTREAM_HTTP_ADDR

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings

echo "== cargo test (Kafka tests against librdkafka's mock cluster)"
cargo test --workspace

echo "== Kafka tests against a real broker (tansu)"
bash tests/broker.sh install
broker_dir=$(mktemp -d)
trap 'bash tests/broker.sh stop "$broker_dir"; rm -rf "$broker_dir"' EXIT
broker=$(bash tests/broker.sh start "$broker_dir")
echo "tansu listening on $broker"
SLIPSTREAM_TEST_BROKER="$broker" cargo test -p slipstream-tests --test kafka

echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p slipstream -p slipstream-core -p slipstream-macros
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features -p slipstream -p slipstream-core

echo "== examples"
bash tests/examples.sh

echo "all tests passed"
