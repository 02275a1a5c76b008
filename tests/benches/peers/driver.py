#!/usr/bin/env python3
"""The load driver and report of the side-by-side bench (tests/benches/peers/run.sh).

Every input value starts with its send time in nanoseconds (19 digits, which upper-casing
keeps), then '|' and lower-case padding up to --size bytes; keys are 'k%06d' % (i % --keys), so
a key's n-th record is known and a count output (key, n) can be matched to its send time. The
output topic is created with LogAppendTime: each output record carries the broker's arrival
time, so a throughput run reads its output after the fact and costs the machine nothing while
the peer runs.

  driver.py run BOOT IN OUT --count N --kind upper|count [--rate R] [--committed]
            [--label JSON] -- CMD...
      creates IN and OUT (6 partitions), then either preloads N records into IN (--rate 0:
      throughput) or produces them at R records/s while CMD runs (latency); runs CMD under
      /usr/bin/time -v until its N outputs have arrived, stops it (SIGTERM) and prints one JSON
      line: start-up to the first output, steady-state throughput (first output to last),
      latency p50/p99 (rated runs), whether the counts are exact, peak RSS; --label's fields
      are added to it.
  driver.py report RESULTS.jsonl --markdown FILE --chart FILE.png --title TEXT
      the median of each system's runs per workload, as a Markdown table and a bar chart.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(boot, topics, partitions, log_append=()):
    """Creates topics; those in log_append get broker append times (message.timestamp.type)."""
    admin = AdminClient({"bootstrap.servers": boot})
    futures = admin.create_topics([
        NewTopic(t, partitions, 1,
                 config={"message.timestamp.type": "LogAppendTime"} if t in log_append else {})
        for t in topics])
    for t, f in futures.items():
        try:
            f.result(30)
        except Exception as e:  # an existing topic is fine
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise


def payload(size):
    pad = "x" * max(0, size - 20)
    return lambda: (f"{time.time_ns():019d}|{pad}").encode()


def key(i, keys):
    return f"k{i % keys:06d}".encode()


def preload(boot, topic, count, keys, size):
    """Produces count records as fast as the broker takes them."""
    p = Producer({"bootstrap.servers": boot, "linger.ms": 5,
                  "queue.buffering.max.messages": 1_000_000, "acks": "all"})
    make = payload(size)
    for i in range(count):
        while True:
            try:
                p.produce(topic, key=key(i, keys), value=make())
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    if p.flush(120):
        raise SystemExit(f"could not preload {topic}")


def reader(boot, topic, committed):
    c = Consumer({"bootstrap.servers": boot, "group.id": f"driver-{os.getpid()}-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed" if committed else "read_uncommitted",
                  "fetch.wait.max.ms": 10})
    meta = c.list_topics(topic, timeout=30).topics[topic]
    c.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    return c, len(meta.partitions)


def read(boot, topic, count, committed, timeout, ready=None, abort=None):
    """Reads count records of topic from its start: [(key, value, broker ms, arrival ns)]."""
    c, _ = reader(boot, topic, committed)
    if ready is not None:
        ready.set()
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline and not (abort and abort.is_set()):
        # consume(n, t) waits for n records or t seconds: poll for one, then drain
        m = c.poll(0.1)
        if m is None:
            continue
        now = time.time_ns()
        for m in [m, *c.consume(10_000, 0)]:
            if not m.error():
                out.append((m.key(), m.value(), m.timestamp()[1], now))
    c.close()
    return out


def written(boot, topic):
    """How many offsets topic's partitions hold (transaction markers included)."""
    c, partitions = reader(boot, topic, False)
    total = 0
    for p in range(partitions):
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
    c.close()
    return total


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def time_report(time_log):
    """Peak RSS (kB), CPU time (s) and how the peer ended, from /usr/bin/time -v."""
    rss, cpu, ended = None, 0.0, None
    try:
        for line in open(time_log):
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1])
            if "User time (seconds)" in line or "System time (seconds)" in line:
                cpu += float(line.split(":")[1])
            if "Command terminated by signal" in line or "Exit status" in line:
                ended = line.strip()
    except OSError:
        pass
    return rss, cpu, ended


def stop(peer):
    """SIGTERMs the peer itself, not /usr/bin/time (which must live on to write its report)."""
    try:
        kids = open(f"/proc/{peer.pid}/task/{peer.pid}/children").read().split()
    except OSError:
        kids = []
    for k in kids:
        try:
            os.kill(int(k), signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        peer.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(peer.pid, signal.SIGKILL)
        peer.wait()


def run(a, cmd):
    create(a.boot, [a.input, a.output], a.partitions, log_append=[a.output])
    if not a.rate:
        preload(a.boot, a.input, a.count, a.keys, a.size)
    time_log = os.path.join(tempfile.gettempdir(), f"driver-time-{os.getpid()}.log")
    live, sends = {}, {}
    saturated = False
    ready, peer_gone = threading.Event(), threading.Event()
    if a.rate:  # latency: read the output as it arrives
        def live_reader():
            live["out"] = read(a.boot, a.output, a.count, a.committed, a.timeout, ready, peer_gone)
        consumer = threading.Thread(target=live_reader)
        consumer.start()
        ready.wait(60)
    started = time.time_ns()
    peer = subprocess.Popen(["/usr/bin/time", "-v", "-o", time_log, *cmd],
                            stdout=open(a.peer_log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    halt = threading.Event()
    if a.rate:
        def rated():
            make = payload(a.size)
            p = Producer({"bootstrap.servers": a.boot, "linger.ms": 1, "acks": "all"})
            n = {}
            t0 = time.perf_counter()
            for i in range(a.count):
                if halt.is_set():
                    break
                delay = t0 + i / a.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                k, v = key(i, a.keys), make()
                n[k] = n.get(k, 0) + 1
                sends[(k, n[k])] = int(v[:19])
                p.produce(a.input, key=k, value=v)
                p.poll(0)
            p.flush(60)
        producer = threading.Thread(target=rated)
        producer.start()
        sent = None  # when the producer was done
        while consumer.is_alive():
            if peer.poll() is not None:
                peer_gone.set()
            if sent is None and not producer.is_alive():
                sent = time.monotonic()
            # a system far behind the offered rate (saturated) is not waited for
            if sent is not None and time.monotonic() - sent > a.drain:
                saturated = True
                peer_gone.set()
            consumer.join(0.2)
        halt.set()
        producer.join()
        out = live["out"]
    else:  # throughput: wait (cheaply) until the outputs are written, then read them
        deadline = time.monotonic() + a.timeout
        while written(a.boot, a.output) < a.count and time.monotonic() < deadline:
            if peer.poll() is not None:
                break
            time.sleep(0.2)
        out = read(a.boot, a.output, a.count, a.committed, 60)
    stop(peer)
    rss, cpu, ended = time_report(time_log)
    if os.path.exists(time_log):
        os.unlink(time_log)

    arrivals = sorted(ms for _, _, ms, _ in out)
    first, last = (arrivals[0], arrivals[-1]) if arrivals else (None, None)
    latencies = []
    if a.rate:
        for k, v, _, now in out:
            sent = int(v[:19]) if a.kind == "upper" else sends.get((k, int(v)))
            # records sent before the first output (plus --warmup s) measure start-up
            if sent is not None and sent >= first * 1_000_000 + a.warmup * 1e9:
                latencies.append(now - sent)
    exact = None
    if a.kind == "count":  # each key's last count is its number of records
        final = {}
        for k, v, _, _ in out:
            final[k] = max(final.get(k, 0), int(v))
        want = {key(i, a.keys): a.count // a.keys + (1 if i < a.count % a.keys else 0)
                for i in range(min(a.keys, a.count))}
        exact = all(final.get(k) == n for k, n in want.items())
    elif out:
        exact = len({v for _, v, _, _ in out}) == a.count
    result = {
        **json.loads(a.label),
        "records": a.count,
        "seen": len(out),
        "exact": exact,
        "startup_s": (first * 1_000_000 - started) / 1e9 if first else None,
        "throughput_per_s": (len(out) - 1) / ((last - first) / 1e3) if first and last > first else None,
        "offered_per_s": a.rate or None,
        "p50_ms": pct(latencies, 0.5) / 1e6 if latencies else None,
        "p99_ms": pct(latencies, 0.99) / 1e6 if latencies else None,
        "latency_samples": len(latencies),
        "peak_rss_mb": rss / 1024 if rss else None,
        # the whole process's, start-up included: per record, on a throughput run
        "cpu_us_per_record": cpu / a.count * 1e6 if cpu and not a.rate else None,
        "peer_ended": ended,
    }
    if saturated and len(out) < a.count:
        result["failed"] = f"saturated ({len(out)} of {a.count} outputs {a.drain:.0f} s after the last input)"
    elif len(out) < a.count:
        result["failed"] = f"{len(out)} of {a.count} outputs ({ended or 'still running'})"
    print(json.dumps(result), flush=True)


WORKLOADS = [  # (workload, column)
    ("upper", "upper msg/s"),
    ("count", "count msg/s"),
    ("upper-eos", "upper EOS msg/s"),
    ("count-eos", "count EOS msg/s"),
]


def report(a):
    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    systems = list(dict.fromkeys(r["system"] for r in rows))

    def runs(system, workload):
        return [r for r in rows if r["system"] == system and r["workload"] == workload]

    def median(system, workload, field):
        values = [r[field] for r in runs(system, workload) if r.get(field) is not None
                  and not r.get("failed")]
        return statistics.median(values) if values else None

    def cell(system, workload, field, fmt):
        done = runs(system, workload)
        if not done:
            return "–"
        if all(r.get("failed") for r in done):
            failed = done[0]["failed"]
            return "saturated" if failed.startswith("saturated") else "failed: " + failed
        value = median(system, workload, field)
        text = fmt(value) if value is not None else "–"
        if any(r.get("exact") is False for r in done):
            text += " (inexact)"
        return text

    rate = lambda v: f"{v / 1000:.1f}k"
    ms = lambda v: f"{v:.0f}"
    lines = [
        "| system | " + " | ".join(c for _, c in WORKLOADS)
        + " | p50 / p99 ms (upper) | p50 / p99 ms (count) | start-up s | peak RSS MB"
        + " | CPU µs per record (upper) |",
        "|---" * (len(WORKLOADS) + 6) + "|",
    ]
    for s in systems:
        lat = []
        for w in ("upper-latency", "count-latency"):
            text = f"{cell(s, w, 'p50_ms', ms)} / {cell(s, w, 'p99_ms', ms)}"
            offered = median(s, w, "offered_per_s")
            if offered and (median(s, w, "throughput_per_s") or 0) < 0.95 * offered:
                text += " (saturated)"
            lat.append(text)
        startup = median(s, "upper", "startup_s")
        rss = [median(s, w, "peak_rss_mb") for w, _ in WORKLOADS]
        rss = max((r for r in rss if r is not None), default=None)
        cells = [cell(s, w, "throughput_per_s", rate) for w, _ in WORKLOADS] + lat + [
            f"{startup:.1f}" if startup is not None else "–",
            f"{rss:.0f}" if rss is not None else "–",
            cell(s, "upper", "cpu_us_per_record", lambda v: f"{v:.1f}"),
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    # Ratios against the hand-written pipelined loop and Kafka Streams, per workload.
    ratios = []
    for base in ("pipelined", "kafka-streams"):
        for w, column in WORKLOADS:
            ours, theirs = median("slipstream", w, "throughput_per_s"), median(base, w, "throughput_per_s")
            if ours and theirs:
                ratios.append(f"{column.replace(' msg/s', '')}: {ours / theirs:.2f}× {base}")
    text = "\n".join(lines) + "\n\nslipstream's throughput: " + (", ".join(ratios) or "–") + "\n"
    with open(a.markdown, "w") as f:
        f.write(text)
    print(text)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(WORKLOADS), figsize=(4 * len(WORKLOADS), 4), sharey=False)
    for ax, (w, column) in zip(axes, WORKLOADS):
        names = [s for s in systems if median(s, w, "throughput_per_s")]
        values = [median(s, w, "throughput_per_s") / 1000 for s in names]
        ax.barh(names, values, color=["#d62728" if n == "slipstream" else "#7f7f7f" for n in names])
        ax.set_title(column.replace(" msg/s", ""))
        ax.set_xlabel("thousand records/s")
        ax.invert_yaxis()
    fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.chart, dpi=80)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["run", "report"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--kind", choices=["upper", "count"], default="upper")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--drain", type=float, default=30.0,
                    help="seconds a rated run waits for outputs once everything is sent")
    ap.add_argument("--committed", action="store_true")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--peer-log", default="/dev/null")
    ap.add_argument("--label", default="{}")
    ap.add_argument("--markdown")
    ap.add_argument("--chart")
    ap.add_argument("--title", default="")
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    if a.what == "run":
        a.boot, a.input, a.output = a.args
        run(a, cmd)
    else:
        (a.results,) = a.args
        report(a)


if __name__ == "__main__":
    main()
