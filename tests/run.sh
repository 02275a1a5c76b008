#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, unit/integration/UI/doc tests (Kafka tests
# against librdkafka's mock cluster, then again against Apache Kafka), the docs, and a check
# that every example prints what its header says. Run from anywhere: `bash tests/run.sh`.
#
# Every cargo command selects the whole workspace (`--workspace`) and builds targets that use
# dev-dependencies, so Cargo resolves features the same way each time (build-time dependencies
# included) and librdkafka and RocksDB are compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
# The suite's applications choose their own admin server addresses.
unset SLIPSTREAM_HTTP_ADDR

# The test broker's jars are resolved (once, then cached) while the rest of the suite runs.
broker_log=$(mktemp)
bash tests/broker.sh install >"$broker_log" 2>&1 &
broker_install=$!
broker_dir=$(mktemp -d)
cleanup() {
  kill "$broker_install" 2>/dev/null || true
  bash tests/broker.sh stop "$broker_dir"
  rm -rf "$broker_dir" "$broker_log"
}
trap cleanup EXIT

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo test (Kafka tests against librdkafka's mock cluster)"
cargo test --workspace

# After the tests, so that the log shows each C/C++ library compiled once ("Compiling") and
# then only checked.
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== Kafka tests against Apache Kafka"
if ! wait "$broker_install"; then
  echo "the test broker could not be installed:" >&2
  cat "$broker_log" >&2
  exit 1
fi
broker=$(bash tests/broker.sh start "$broker_dir")
echo "Apache Kafka listening on $broker"
# Every Kafka test, those ignored in the mock pass included (they need Kafka's transactions or
# start nodes of their own), but those that inject faults into a mock cluster of their own
# (they ran above), the scrape test and the failover tests (below).
TEST_KAFKA_BROKER="$broker" cargo test --workspace --test kafka -- --include-ignored \
  --skip faults:: --skip fenced:: --skip deadline:: --skip stream::the_embedded_broker \
  --skip scrapes::concurrent_scrapes --skip failover::
# The group tests again with the consumer group protocol of KIP-848 (the broker assigns).
SLIPSTREAM_GROUP_PROTOCOL=consumer TEST_KAFKA_BROKER="$broker" cargo test --workspace \
  --test kafka -- --include-ignored state::instances_added_and_stopped \
  exactly_once::three_instances exactly_once::instances_come_and_go
# One at a time, as each starts a three-node cluster of its own (about 1 GB).
TEST_KAFKA_BROKER="$broker" cargo test --workspace --test kafka -- --ignored failover:: \
  --test-threads=1
# Alone, as it measures a rate: hundreds of concurrent /metrics scrapes beside a pipeline.
TEST_KAFKA_BROKER="$broker" cargo test --workspace --test kafka -- --ignored --exact \
  scrapes::concurrent_scrapes_do_not_slow_the_pipeline_or_cost_it_its_group
bash tests/broker.sh stop "$broker_dir"

echo "== docs"
# With the examples, Cargo resolves features as for the tests (the test package turns every
# feature on), so nothing is compiled again.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --examples

echo "== examples"
bash tests/examples.sh

echo "all tests passed"
