#!/usr/bin/env bash
# An optional second broker for the Kafka tests: tansu (crates.io; no transactions), built once
# into a cache outside the clone and started on a free 127.0.0.1 port with its sqlite storage.
# The suite does not use it; to run the Kafka tests on it:
#   bash tests/tansu.sh install && broker=$(bash tests/tansu.sh start DIR)
#   TEST_KAFKA_BROKER=$broker cargo test --workspace --test kafka
#   bash tests/tansu.sh install        # build it if it is not cached yet (about 25 minutes)
#   bash tests/tansu.sh start DIR      # start it in DIR; prints its address; pid in DIR/pid
#   bash tests/tansu.sh stop DIR
set -euo pipefail

TANSU_VERSION=0.6.0
cache="${TEST_TOOLS_CACHE:-$HOME/.cache/slipstream}/tools"
tansu="$cache/bin/tansu"

case "${1:-}" in
  install)
    if [ -x "$tansu" ] && "$tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
      exit 0
    fi
    echo "broker: installing tansu $TANSU_VERSION into $cache (once; about 25 minutes on 2 cores)" >&2
    # Tuned for build time, not speed (a test broker): optimisation level 1, no LTO, no debug
    # info, in a target directory of its own that is removed afterwards.
    build="$cache/tansu-build"
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=false \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_TARGET_DIR="$build" \
      cargo install tansu --version "$TANSU_VERSION" --locked --features libsql --root "$cache" >&2
    rm -rf "$build"
    ;;
  start)
    dir=$2
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$dir" && exec "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://tansu.db" >tansu.log 2>&1) &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
      if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port"
        exit 0
      fi
      sleep 0.1
    done
    echo "broker: tansu did not start; its log:" >&2
    cat "$dir/tansu.log" >&2
    exit 1
    ;;
  stop)
    dir=$2
    if [ -f "$dir/pid" ]; then
      pid=$(cat "$dir/pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/pid"
    fi
    ;;
  *)
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
