"""slipstream-async (1.0.5) peer: upper | count. No exactly-once in this library.

usage: peer_slipstream_async.py upper|count BOOT IN OUT GROUP
"""
import asyncio
import os
import sys
import tempfile
import time

from slipstream import Cache, Topic, handle, stream

mode, boot, src, dst, group = sys.argv[1:6]
conf = {"bootstrap_servers": boot}
t_in = Topic(src, {**conf, "group_id": group, "auto_offset_reset": "earliest"})
t_out = Topic(dst, conf)
first = True


def mark():
    global first
    if first:
        first = False
        print("FIRST", int(time.time() * 1000), file=sys.stderr, flush=True)


if mode == "upper":
    @handle(t_in, sink=[t_out])
    def upper(msg):
        mark()
        return msg.key, msg.value.upper()
else:
    cache = Cache(os.path.join(tempfile.gettempdir(), f"slipstream-async-state-{group}"))

    @handle(t_in, sink=[t_out])
    def count(msg):
        mark()
        n = (cache[msg.key] or 0) + 1 if msg.key in cache else 1
        cache[msg.key] = n
        return msg.key, str(n)

asyncio.run(stream())
