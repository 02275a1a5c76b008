#!/usr/bin/env bash
# The test suite's real broker: Apache Kafka in KRaft mode (no ZooKeeper), its jars resolved once
# from Maven Central into a cache outside the clone, started on free 127.0.0.1 ports with
# settings fit for tests. Needs Java 17+ and Maven (`tests/setup.sh` installs them when missing).
#
#   bash tests/broker.sh install           # resolve the jars unless cached (about 10 s, 45 MB)
#   bash tests/broker.sh start DIR [--nodes N] [--sasl USER:PASSWORD] [--advertise PORT]
#       formats and starts N combined broker/controller nodes (1 by default; 3 gives replication
#       factor 3 and min.insync.replicas=2) with their data in DIR, waits until every node has
#       started, and prints the bootstrap address (`127.0.0.1:PORT,...`). `--sasl` makes the
#       client listener require SASL/SCRAM-SHA-256 with that user (brokers talk among themselves
#       on a plain listener of their own); `--advertise` tells clients to connect to PORT
#       instead (a proxy in front of a single node).
#   bash tests/broker.sh stop DIR          # stops every node started in DIR
#   bash tests/broker.sh node DIR ID[,ID...] stop|kill|start|port
#       nodes of DIR (ids are 1..N): SIGTERM (a graceful shutdown) and wait, SIGKILL and
#       wait, start them again on their data (together) and wait until they have started, or
#       print their client ports.
set -euo pipefail

KAFKA_VERSION=4.4.0
here=$(cd "$(dirname "$0")" && pwd)
cache="${TEST_TOOLS_CACHE:-$HOME/.cache/slipstream}/tools"
libs="$cache/kafka-$KAFKA_VERSION/libs"
# A test broker: a small heap that grows when needed, short GC pauses.
jvm_opts=(-Xms128m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/broker/log4j2.yaml")

die() { echo "broker: $*" >&2; exit 1; }

install() {
  [ -f "$libs/.complete" ] && return 0
  command -v java >/dev/null || die "java not found (bash tests/setup.sh installs it)"
  command -v mvn >/dev/null || die "mvn not found (bash tests/setup.sh installs it)"
  echo "broker: resolving Apache Kafka $KAFKA_VERSION into $libs (once)" >&2
  rm -rf "$libs.partial"
  mvn -q -B -f "$here/broker/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.partial" >&2
  rm -rf "$libs"
  mv "$libs.partial" "$libs"
  touch "$libs/.complete"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts node DIR/node-ID from its server.properties; its output goes to DIR/node-ID/log (the
# previous log is kept as log.N).
launch() {
  local node=$1
  if [ -f "$node/log" ]; then
    mv "$node/log" "$node/log.$(ls "$node" | grep -c '^log')"
  fi
  (exec java "${jvm_opts[@]}" -cp "$libs/*" kafka.Kafka "$node/server.properties" \
    >"$node/log" 2>&1 </dev/null) &
  echo $! >"$node/pid"
}

# Waits until every node given has logged that it started (60 s at most).
await_started() {
  local node
  for node in "$@"; do
    for _ in $(seq 1 600); do
      grep -q "Kafka Server started" "$node/log" 2>/dev/null && continue 2
      if ! kill -0 "$(cat "$node/pid")" 2>/dev/null; then
        tail -n 40 "$node/log" >&2
        die "$node exited while starting"
      fi
      sleep 0.1
    done
    tail -n 40 "$node/log" >&2
    die "$node did not start within 60 s"
  done
}

# Ends the process of a node: signal $2 (TERM or KILL), then waits for it (KILL after 60 s).
end_node() {
  local node=$1 signal=$2 pid
  [ -f "$node/pid" ] || return 0
  pid=$(cat "$node/pid")
  kill -s "$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$node/pid"
}

start() {
  local dir=$1 nodes=1 sasl="" advertise=""
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes=$2; shift 2 ;;
      --sasl) sasl=$2; shift 2 ;;
      --advertise) advertise=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ "$nodes" =~ ^[1-9]$ ]] || die "--nodes takes 1 to 9"
  [ -z "$advertise" ] || [ "$nodes" = 1 ] || die "--advertise is for a single node"
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)

  local id voters="" bootstrap="" rf isr
  declare -A port control internal
  for id in $(seq 1 "$nodes"); do
    port[$id]=$(free_port)
    control[$id]=$(free_port)
    internal[$id]=$(free_port)
    voters+="${voters:+,}$id@127.0.0.1:${control[$id]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${port[$id]}"
  done
  if [ "$nodes" -ge 3 ]; then rf=3; isr=2; else rf=$nodes; isr=1; fi
  local cluster
  cluster=$(python3 -c 'import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not u.startswith("-"): print(u); break')

  for id in $(seq 1 "$nodes"); do
    local node="$dir/node-$id" listeners advertised protocols scram=()
    mkdir -p "$node/data"
    if [ -n "$sasl" ]; then
      listeners="INTERNAL://127.0.0.1:${internal[$id]},CLIENT://127.0.0.1:${port[$id]}"
      advertised="INTERNAL://127.0.0.1:${internal[$id]},CLIENT://127.0.0.1:${advertise:-${port[$id]}}"
      protocols="INTERNAL:PLAINTEXT,CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
      scram=(--add-scram "SCRAM-SHA-256=[name=${sasl%%:*},password=${sasl#*:}]")
    else
      listeners="INTERNAL://127.0.0.1:${port[$id]}"
      advertised="INTERNAL://127.0.0.1:${advertise:-${port[$id]}}"
      protocols="INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    fi
    cat >"$node/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=$listeners,CONTROLLER://127.0.0.1:${control[$id]}
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$node/data
# Replication: every internal topic (group offsets, transaction state) on every node of a
# cluster of up to 3, and a write acknowledged by all needs 2 of 3 in sync.
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# Fewer internal partitions than production (50): quicker to create on first use.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# Groups: the first member starts at once; the tests' short session timeouts are allowed.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
PROPS
    java "${jvm_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster" \
      -c "$node/server.properties" "${scram[@]}" >"$node/format.log" 2>&1 &
  done
  wait || die "formatting the storage failed: $(cat "$dir"/node-*/format.log)"
  local started=()
  for id in $(seq 1 "$nodes"); do
    echo "${port[$id]}" >"$dir/node-$id/port"
    launch "$dir/node-$id"
    started+=("$dir/node-$id")
  done
  await_started "${started[@]}" || { stop "$dir"; exit 1; }
  echo "$bootstrap" >"$dir/bootstrap"
  echo "$bootstrap"
}

stop() {
  local dir=$1 node
  for node in "$dir"/node-*; do
    [ -f "$node/pid" ] && kill -TERM "$(cat "$node/pid")" 2>/dev/null || true
  done
  # A node of a cluster being stopped waits for a controller quorum that is going away: the
  # data is thrown away, so it is not waited for long.
  for node in "$dir"/node-*; do
    [ -f "$node/pid" ] || continue
    local pid
    pid=$(cat "$node/pid")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    end_node "$node" KILL
  done
}

case "${1:-}" in
  install) install ;;
  start) [ $# -ge 2 ] || die "usage: start DIR [--nodes N] [--sasl USER:PASSWORD] [--advertise PORT]"
    start "${@:2}" ;;
  stop) [ $# -ge 2 ] || die "usage: stop DIR"; stop "$2" ;;
  node)
    # IDs: one node's id, or several separated by commas (started together: a cluster whose
    # controllers are all down needs a quorum of them back before any finishes starting).
    [ $# -ge 4 ] || die "usage: node DIR ID[,ID...] stop|kill|start|port"
    nodes=()
    for id in ${3//,/ }; do
      [ -f "$2/node-$id/server.properties" ] || die "no node $id in $2"
      nodes+=("$2/node-$id")
    done
    case "$4" in
      stop) for node in "${nodes[@]}"; do end_node "$node" TERM; done ;;
      kill) for node in "${nodes[@]}"; do end_node "$node" KILL; done ;;
      start) for node in "${nodes[@]}"; do launch "$node"; done; await_started "${nodes[@]}" ;;
      port) for node in "${nodes[@]}"; do cat "$node/port"; done ;;
      *) die "node actions: stop kill start port" ;;
    esac
    ;;
  *) echo "usage: $0 install | start DIR [--nodes N] [--sasl USER:PASSWORD] [--advertise PORT] | stop DIR | node DIR ID[,ID...] stop|kill|start|port" >&2
    exit 2 ;;
esac
