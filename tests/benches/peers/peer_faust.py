"""Faust (faust-streaming 0.15.3) peer: upper | count, optionally exactly-once.

usage: peer_faust.py upper|count BOOT IN OUT GROUP [eos]
(runs the Faust worker itself: app.main() with argv 'worker -l warn')
"""
import os
import sys
import tempfile
import time

import faust

mode, boot, src, dst, group = sys.argv[1:6]
eos = len(sys.argv) > 6 and sys.argv[6] == "eos"
app = faust.App(
    group,
    broker=f"kafka://{boot}",
    store="rocksdb://",  # rocksdict (from PyPI) backs it when python-rocksdb is absent
    datadir=os.path.join(tempfile.gettempdir(), f"faust-data-{group}"),
    processing_guarantee="exactly_once" if eos else "at_least_once",
    topic_partitions=6,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    key_serializer="raw",
    value_serializer="raw",
)
t_in = app.topic(src, key_type=bytes, value_type=bytes, partitions=6)
t_out = app.topic(dst, key_type=bytes, value_type=bytes, partitions=6)
first = [True]


def mark():
    if first[0]:
        first[0] = False
        print("FIRST", int(time.time() * 1000), file=sys.stderr, flush=True)


if mode == "upper":
    @app.agent(t_in)
    async def upper(stream):
        async for key, value in stream.items():
            mark()
            await t_out.send(key=key, value=value.upper())
else:
    # The table's changelog has the input's 6 partitions: the keyed input is co-partitioned.
    counts = app.Table("counts", default=int, partitions=6, key_type=bytes, value_type=int)

    @app.agent(t_in)
    async def count(stream):
        async for key, _value in stream.items():
            mark()
            counts[key] += 1
            await t_out.send(key=key, value=str(counts[key]).encode())

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
