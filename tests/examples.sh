#!/usr/bin/env bash
# Runs every finite example and compares its standard output with the output its header
# documents; runs `timer` for a few seconds and checks its lines and its graceful Ctrl-C exit.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q --workspace --examples
dir="${CARGO_TARGET_DIR:-target}/debug/examples"
failed=0

expect() { # name, expected output
  local name=$1 expected=$2 actual
  actual=$("$dir/$name" 2>/dev/null) || { echo "example $name: exit status $?"; failed=1; return; }
  if [ "$actual" == "$expected" ]; then
    echo "example $name: ok"
  else
    echo "example $name: unexpected output"; diff <(echo "$expected") <(echo "$actual") || true
    failed=1
  fi
}

expect hello $'Hello 🏆!\nHello 📞!\nHello 🐟!\nHello 👌!'
expect yield $'zero: 0\neven: 0\neven: 2\neven: 4'
expect pipe $'1 -> 3 (+2)\n3 -> 6 (+3)\n6 -> 10 (+4)\n10 -> 15 (+5)'
expect proxy $'Proxied 🏆!\nProxied 📞!\nProxied 🐟!\nProxied 👌!'
expect async-handler $'looked up 1: one\nstored: one\nlooked up 2: two\nstored: two\nlooked up 3: three\nstored: three'
expect errors $'parsed 1\nparsed 3\nchecked 1\nrun() returned: handler `checked` failed: 7 is too large'
expect acks $'second: job 1\njob 1 done\nsecond: job 2\njob 2 done\njob 3 failed\nrun() returned: handler `second` failed: job 3 is broken'
expect topic $'trophy 🏆\nfish 🐟'
expect conf $'{bootstrap.servers: "localhost:29092", group.id: "default-demo"}\n{bootstrap.servers: "localhost:29091", group.id: "demo", sasl.mechanism: "PLAIN", sasl.password: "********", sasl.username: "myuser", security.protocol: "SASL_SSL"}'
expect codec '{"msg":"🐟"}'
expect pipeline $'trophy Hello 🏆!\nphone Hello 📞!\nfish Hello 🐟!\nok Hello 👌!'
expect avro $'Emoji { name: "trophy", emoji: "🏆" }\nEmoji { name: "fish", emoji: "🐟" }'

expect cache $'phone 📞\nprize 🏆'
expect sliding-window "$(for i in 2 3 4 5 6 7 8 9; do echo "Sliding window ending at 10:0$i: 3 readings, total $((3 * i))"; done)"
expect temporal-join $'The weather during swimming was 🌞\nThe weather during hiking was 🌧\nThe weather during cycling was 🌤\nThe weather during stargazing was 🌙'

expect group-counts $'two instances counted: 🏆 30, 🐟 20, 📞 10\none instance counted on: 🏆 60, 🐟 40, 📞 20'
expect synchronization $'The weather during swimming was 🌞\nThe weather is 90 minutes behind the activities: pausing them\nThe weather has caught up: replaying the activities from offset 0\nThe weather during swimming was 🌧\nThe weather during hiking was 🌤\nThe weather during cycling was ⛅'

# Runs a long-running example for some seconds, stops it with Ctrl-C, prints its output.
run_for() { # seconds, name
  local out status
  out=$(mktemp)
  "$dir/$2" >"$out" 2>/dev/null &
  local pid=$!
  sleep "$1"
  kill -INT "$pid"
  wait "$pid" && status=0 || status=$?
  cat "$out"
  rm -f "$out"
  return $status
}

# counts: the counts persist across runs.
rm -rf "${TMPDIR:-/tmp}/slipstream-example-counts"
for expected in "🏆 3, 🐟 2, 📞 1" "🏆 6, 🐟 4, 📞 2"; do
  if last=$(run_for 6 counts | tail -n 1) && [ "$last" == "$expected" ]; then
    echo "example counts: ok ($expected)"
  else
    echo "example counts: expected '$expected', got '$last'"; failed=1
  fi
done

# endpoint: /updates streams a new line each second; Ctrl-C stops the handlers and the server.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT_ADDR="127.0.0.1:$port" "$dir/endpoint" >/dev/null 2>&1 &
pid=$!
lines=$(python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for _ in range(50):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError:
        time.sleep(0.1)
s.sendall(b"GET /updates HTTP/1.1\r\nHost: localhost\r\n\r\n")
s.settimeout(0.5)
data, end = b"", time.time() + 3.5
while time.time() < end:
    try:
        data += s.recv(4096)
    except socket.timeout:
        pass
import re
print(len(re.findall(rb"\d\d:\d\d:\d\d\n", data)))
PY
)
kill -INT "$pid"
if wait "$pid" && [ "$lines" -ge 3 ] && [ "$lines" -le 5 ]; then
  echo "example endpoint: ok ($lines updates in 3.5 s, clean exit on SIGINT)"
else
  echo "example endpoint: $lines updates, exit status $?"; failed=1
fi

# admin: the admin server answers /health, /metrics and /handlers while the pipeline runs.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp)
SLIPSTREAM_HTTP_ADDR="127.0.0.1:$port" "$dir/admin" >"$out" 2>/dev/null &
pid=$!
report=$(python3 - "$port" <<'PY'
import json, re, sys, time, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
status, health = None, ""
def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
for _ in range(50):
    try:
        status, health = get("/health")
        if status == 200: break
    except OSError:
        pass
    time.sleep(0.1)
time.sleep(1.5)  # 15 numbers: at least 2 multiples of 7
_, metrics = get("/metrics")
def sample(name, labels):
    m = re.search(re.escape(name + "{" + labels + "}") + r" (\S+)", metrics)
    return float(m.group(1)) if m else None
seen = sample("slipstream_handler_messages_total", 'handler="check"')
errors = sample("slipstream_handler_errors_total", 'handler="check",kind="error"')
names = sorted(h["name"] for h in json.loads(get("/handlers")[1]))
ok = status == 200 and json.loads(health)["status"] == "ok" and seen and seen >= 10 and errors and errors >= 1 and names == ["check", "count"]
print("ok" if ok else f"health {status} {health!r}, check saw {seen} with {errors} errors, handlers {names}")
PY
)
kill -INT "$pid"
if wait "$pid" && [ "$report" == ok ] && grep -q '^accepted 1$' "$out" && ! grep -q '^accepted 7$' "$out"; then
  echo "example admin: ok (/health, /metrics, /handlers answered; clean exit on SIGINT)"
else
  echo "example admin: $report, exit status $?"; head -n 3 "$out"; failed=1
fi
rm -f "$out"

# timer: one HH:MM:SS line a second until Ctrl-C, then a clean exit.
out=$(mktemp)
"$dir/timer" >"$out" 2>/dev/null &
pid=$!
sleep 3.5
kill -INT "$pid"
if wait "$pid"; then
  lines=$(wc -l <"$out")
  if [ "$lines" -ge 3 ] && [ "$lines" -le 5 ] && ! grep -qvE '^[0-9]{2}:[0-9]{2}:[0-9]{2}$' "$out"; then
    echo "example timer: ok ($lines ticks in 3.5 s, clean exit on SIGINT)"
  else
    echo "example timer: unexpected output"; cat "$out"; failed=1
  fi
else
  echo "example timer: exit status $? after SIGINT"; failed=1
fi
rm -f "$out"

exit $failed
