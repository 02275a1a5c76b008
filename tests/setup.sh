#!/usr/bin/env bash
# Installs what building slipstream needs on a fresh Debian/Ubuntu machine with Rust installed,
# skipping whatever is already there. Safe to run again.
set -euo pipefail

# System packages the build needs (none yet beyond a C toolchain for the Rust standard crates;
# the Kafka and RocksDB components will add theirs here).
packages=()

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
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true
