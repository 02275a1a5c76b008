#!/usr/bin/env bash
# Installs what building slipstream needs on a fresh Debian/Ubuntu machine with Rust installed,
# skipping whatever is already there. Safe to run again.
set -euo pipefail

# System packages the build needs: a C/C++ toolchain, make and cmake (librdkafka and RocksDB are
# built from source; librdkafka's CMake build includes curl's headers; RocksDB's bindings need
# libclang; TLS and SASL use OpenSSL). The test broker, Apache Kafka, runs on Java 17 or later
# and is resolved with Maven: installed only when there is no `java` or `mvn` at all.
packages=(gcc g++ make cmake libc6-dev pkg-config libcurl4-openssl-dev libssl-dev clang libclang-dev)
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || packages+=(maven)

missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
# The toolchain rust-toolchain.toml pins, with rustfmt and clippy.
if command -v rustup >/dev/null; then
  installed=$(rustup component list --installed 2>/dev/null || true)
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || rustup component add "$component"
  done
fi
