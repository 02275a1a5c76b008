#!/usr/bin/env bash
# The side-by-side bench: the same topologies, on one Apache Kafka node of its own, in one run,
# through slipstream, two hand-written rdkafka loops, Kafka Streams, Quix Streams, Faust and the
# Python original. Writes tests/benches/peers/results.{jsonl,md} and chart.png, and the table
# into the README. Run from anywhere:
#
#   bash tests/benches/peers/run.sh            # every workload, ROUNDS rounds (1 by default)
#
# Settings (environment): ROUNDS (runs per system and workload, alternating; the table shows
# the median), RECORDS (1,000,000: records of a throughput run), SLOW_RECORDS (100,000: the
# same for the systems that handle a few thousand records a second: the Python original and
# Faust), AWAITING_RECORDS (10,000: the awaiting loop, a few hundred a second), RATE (5,000 records/s offered in the latency runs) and
# LATENCY_SECONDS (30), SYSTEMS (a space-separated subset), WORKLOADS (a subset of: upper count
# upper-eos count-eos upper-latency count-latency), APPEND (when set, this run's results replace
# only the same systems' and workloads' in results.jsonl: to run some again).
#
# Installs what it needs once, into ~/.cache/slipstream: a Python venv with the pinned peers
# (requirements.txt, from PyPI) and the Kafka Streams program (built by Maven from Maven
# Central). The broker is tests/broker.sh's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache="${TEST_TOOLS_CACHE:-$HOME/.cache/slipstream}"
env="$cache/peers"
ROUNDS=${ROUNDS:-1}
RECORDS=${RECORDS:-1000000}
SLOW_RECORDS=${SLOW_RECORDS:-100000}
AWAITING_RECORDS=${AWAITING_RECORDS:-10000}
RATE=${RATE:-5000}
LATENCY_SECONDS=${LATENCY_SECONDS:-30}
SYSTEMS=${SYSTEMS:-slipstream pipelined awaiting kafka-streams quix faust slipstream-async}
WORKLOADS=${WORKLOADS:-upper count upper-eos count-eos upper-latency count-latency}

bash "$root/tests/setup.sh"
bash "$root/tests/broker.sh" install

# The Python peers, pinned (the venv is made again when requirements.txt changes).
mkdir -p "$env"
if ! cmp -s "$here/requirements.txt" "$env/venv/requirements.txt"; then
  rm -rf "$env/venv"
  python3 -m venv "$env/venv"
  "$env/venv/bin/pip" install -q -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$env/venv/requirements.txt"
fi
python="$env/venv/bin/python"

# Kafka Streams, built outside the clone.
rm -rf "$env/kstreams.new" && mkdir -p "$env/kstreams.new"
cp -r "$here/kstreams/pom.xml" "$here/kstreams/src" "$env/kstreams.new/"
if ! diff -rq "$env/kstreams.new" "$env/kstreams/source" >/dev/null 2>&1; then
  (cd "$env/kstreams.new" && mvn -q -B package -DskipTests)
  rm -rf "$env/kstreams" && mkdir -p "$env/kstreams/source"
  cp -r "$here/kstreams/pom.xml" "$here/kstreams/src" "$env/kstreams/source/"
  mv "$env/kstreams.new/target" "$env/kstreams/target"
fi
rm -rf "$env/kstreams.new"

# The Rust peers, optimised.
peer=$(cd "$root" && cargo bench --workspace --bench peer --no-run 2>&1 |
  sed -n 's/.*Executable benches\/peers\/peer.rs (\(.*\))/\1/p')
[ -x "$peer" ] || { echo "the Rust peer did not build" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  bash "$root/tests/broker.sh" stop "$work/broker"
  rm -rf "$work"
}
trap cleanup EXIT
boot=$(bash "$root/tests/broker.sh" start "$work/broker")
echo "Apache Kafka on $boot; results in $here/results.jsonl" >&2

# The command line of SYSTEM running KIND (upper|count) from IN to OUT in group GROUP [eos].
command_of() {
  local system=$1 kind=$2 in=$3 out=$4 group=$5 eos=$6
  case $system in
    slipstream | pipelined | awaiting) echo "$peer $system $kind $boot $in $out $group $eos" ;;
    kafka-streams)
      # linger.ms 5 rather than Kafka Streams' 100 (its latency would be 50 ms worse).
      echo "java -Xms64m -Xmx512m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn" \
        "-Dpeer.linger.ms=5 -Djava.io.tmpdir=$work/tmp -cp $env/kstreams/target/classes:$env/kstreams/target/lib/*" \
        "peers.KStreamsPeer $kind $boot $in $out $group $eos" ;;
    quix) echo "$python $here/peer_quix.py $kind $boot $in $out $group $eos" ;;
    faust) echo "$python $here/peer_faust.py $kind $boot $in $out $group $eos" ;;
    slipstream-async) echo "$python $here/peer_slipstream_async.py $kind $boot $in $out $group" ;;
  esac
}

# Whether SYSTEM has an exactly-once mode.
has_eos() {
  case $1 in slipstream | kafka-streams | quix | faust) return 0 ;; *) return 1 ;; esac
}

results="$work/results.jsonl"
: >"$results"
n=0
for round in $(seq 1 "$ROUNDS"); do
  for workload in $WORKLOADS; do
    for system in $SYSTEMS; do
      kind=${workload%%-*}
      eos="" committed=() rate=() count=$RECORDS
      case $workload in
        *-eos) has_eos "$system" || continue; eos=eos committed=(--committed) ;;
        *-latency) rate=(--rate "$RATE") count=$((RATE * LATENCY_SECONDS)) ;;
      esac
      case $system in
        faust | slipstream-async) [ -n "${rate[*]}" ] || count=$SLOW_RECORDS ;;
        awaiting) [ -n "${rate[*]}" ] || count=$AWAITING_RECORDS ;;
      esac
      n=$((n + 1))
      name="p$n-$system-$workload"
      label=$(printf '{"system":"%s","workload":"%s","round":%d}' "$system" "$workload" "$round")
      echo "== round $round: $system, $workload ($count records)" >&2
      # Quix's 5 s commit interval would bound its exactly-once latency.
      # Each system keeps its state in a directory of this run's (TMPDIR).
      mkdir -p "$work/tmp"
      TMPDIR="$work/tmp" PEER_COMMIT_S=0.1 timeout 1800 "$python" "$here/driver.py" run "$boot" "$name-in" "$name-out" \
        --count "$count" --kind "$kind" "${rate[@]}" "${committed[@]}" --label "$label" \
        --peer-log "$work/$name.log" -- $(command_of "$system" "$kind" "$name-in" "$name-out" "$name" "$eos") \
        | tee -a "$results" >&2 || echo "{\"system\":\"$system\",\"workload\":\"$workload\",\"round\":$round,\"failed\":\"the driver failed\"}" >>"$results"
      if grep -q '"failed"' <(tail -1 "$results"); then
        echo "-- its log:" >&2
        tail -20 "$work/$name.log" >&2 || true
      fi
    done
  done
done

if [ -n "${APPEND:-}" ] && [ -f "$here/results.jsonl" ]; then
  # This run's systems and workloads replace their earlier runs; the rest are kept.
  python3 - "$here/results.jsonl" "$results" <<'EOF'
import json, sys
kept, new = sys.argv[1], sys.argv[2]
fresh = [json.loads(l) for l in open(new) if l.strip()]
redone = {(r["system"], r["workload"]) for r in fresh}
old = [json.loads(l) for l in open(kept) if l.strip()]
rows = [r for r in old if (r["system"], r["workload"]) not in redone] + fresh
open(kept, "w").write("".join(json.dumps(r) + "\n" for r in rows))
EOF
else
  cp "$results" "$here/results.jsonl"
fi
machine="$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
title="$(date -u +%Y-%m-%d), Apache Kafka 4.4.0 (1 node, KRaft), $machine"
"$python" "$here/driver.py" report "$here/results.jsonl" --markdown "$here/results.md" \
  --chart "$here/chart.png" --title "$title"
# The README's table, between its markers.
python3 - "$root/README.md" "$here/results.md" "$title" <<'EOF'
import sys
readme, table, title = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
text = open(readme).read()
begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = f"{head}{begin}\n{title}:\n\n{table}{end}{tail}"
    open(readme, "w").write(text)
EOF
