"""Quix Streams (quixstreams 3.28.1) peer: upper | count, optionally exactly-once.

usage: peer_quix.py upper|count BOOT IN OUT GROUP [eos]
PEER_COMMIT_S sets commit_interval (Quix's default 5 s; under exactly-once it bounds latency).
"""
import os
import sys
import tempfile
import time

from quixstreams import Application

mode, boot, src, dst, group = sys.argv[1:6]
eos = len(sys.argv) > 6 and sys.argv[6] == "eos"
app = Application(
    broker_address=boot,
    consumer_group=group,
    auto_offset_reset="earliest",
    processing_guarantee="exactly-once" if eos else "at-least-once",
    state_dir=os.path.join(tempfile.gettempdir(), f"quix-state-{group}"),
    loglevel="WARNING",
    commit_interval=float(os.environ.get("PEER_COMMIT_S", "5")),
)
t_in = app.topic(src, key_deserializer="str", value_deserializer="str")
t_out = app.topic(dst, key_serializer="str", value_serializer="str")
sdf = app.dataframe(t_in)
first = [True]


def mark(v):
    if first[0]:
        first[0] = False
        print("FIRST", int(time.time() * 1000), file=sys.stderr, flush=True)
    return v


sdf = sdf.update(mark)
if mode == "upper":
    sdf = sdf.apply(str.upper)
else:
    def count(_value, state):
        n = state.get("n", 0) + 1  # the state is scoped to the message key
        state.set("n", n)
        return str(n)

    sdf = sdf.apply(count, stateful=True)
sdf.to_topic(t_out)
app.run()
