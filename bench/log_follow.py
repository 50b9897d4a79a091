#!/usr/bin/env python3
"""How long an app's log line takes from the engine to the follower of its stream
(containers.follow_logs_async, what log_streams.stream_follower reads), on an event loop that is
idle and on one kept busy the way fanning lines out to thousands of clients keeps it busy.
Measured in one run, side by side:

    .venv/bin/python bench/log_follow.py [--rate 200] [--seconds 5] [--busy-ms 5] [--rounds 2]

- native: the engine's HTTP log stream read on the event loop (asyncio streams: what
  follow_logs_async does for unix:// and tcp:// engines);
- thread: the SDK's stream read by a helper thread that hands each line to the loop with
  call_soon_threadsafe (what it did before, and still does for ssh:// and TLS engines).

A container of the test image (tests/support/images.py) runs `sleep`; a separate process writes
`tick <i>` to its PID 1 stdout --rate times a second (the engine stamps each line on arrival; the
same host clock is the reference). Busy: a task spins --busy-ms at a time between yields to the
loop. Prints per mode and load: lines received, engine-to-consumer p50/p99/max, and (idle) this
process's CPU per line. Rounds alternate the modes. Exit status 0 whatever the figures.
"""
import argparse
import asyncio
import subprocess
import sys
import time
import uuid

import common  # noqa: F401 - puts the repository and tests/ on sys.path

import containers  # noqa: E402
from containers import container_logs  # noqa: E402
from containers.engine import LABEL_INSTANCE, LABEL_MANAGED, instance_id  # noqa: E402
from support import images  # noqa: E402

WRITER = """
import sys, time
out = open(sys.argv[1], "w", buffering=1)
count, rate = int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
for i in range(count):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    out.write(f"tick {i}\\n")
"""


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


async def one_round(args, mode, app_id, pid, busy_ms):
    """(latencies in ms, process CPU seconds) of one round."""
    stream = (containers.follow_logs_async(app_id, lines=0) if mode == "native"
              else container_logs._follow_in_thread(app_id, 0, None, None))
    latencies, stop = [], False

    async def busy():
        while not stop:
            end = time.perf_counter() + busy_ms / 1000
            while time.perf_counter() < end:
                pass
            await asyncio.sleep(0)

    async def consume():
        async for when, _text in stream:
            latencies.append((time.time() - when.timestamp()) * 1000)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.3)    # the stream is open
    spinner = asyncio.create_task(busy()) if busy_ms else None
    cpu = time.process_time()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, f"/proc/{pid}/fd/1",
                               str(int(args.rate * args.seconds)), str(args.rate)])
    while writer.poll() is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)    # the last lines on their way
    cpu = time.process_time() - cpu
    stop = True
    if spinner:
        await spinner
    consumer.cancel()
    try:
        await consumer
    except asyncio.CancelledError:
        pass
    await stream.aclose()
    return latencies, cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200, help="lines per second")
    p.add_argument("--seconds", type=float, default=5.0, help="per round")
    p.add_argument("--busy-ms", type=float, default=5.0, help="the busy loop's slice between yields")
    p.add_argument("--rounds", type=int, default=2, help="per mode and load")
    args = p.parse_args()
    client = containers.client()
    run = uuid.uuid4().hex[:8]
    app_id = f"bench-follow-{run}"
    container = client.containers.run(
        images.httpd_image(client), entrypoint=["/bin/sleep", "3600"], name=containers.container_name(app_id),
        detach=True, labels={LABEL_MANAGED: "1", LABEL_INSTANCE: instance_id(), "berth.test-run": run})
    try:
        container.reload()
        pid = container.attrs["State"]["Pid"]
        results = {}
        for busy_ms in (0, args.busy_ms):
            for _ in range(args.rounds):
                for mode in ("thread", "native"):
                    results.setdefault((busy_ms, mode), []).append(asyncio.run(one_round(args, mode, app_id, pid,
                                                                                         busy_ms)))
        sent = int(args.rate * args.seconds) * args.rounds
        print(f"engine -> follow_logs_async consumer, {args.rate:g} lines/s for {args.seconds:g} s, {args.rounds} "
              f"round(s) per mode (alternating)")
        for (busy_ms, mode), rounds in results.items():
            latencies = [ms for got, _ in rounds for ms in got]
            cpu = sum(c for _, c in rounds)
            load = f"loop busy ({busy_ms:g} ms slices)" if busy_ms else "loop idle"
            print(f"  {load:26} {mode:6}: {len(latencies)}/{sent} lines   p50 {pct(latencies, 50):7.2f} ms   "
                  f"p99 {pct(latencies, 99):7.2f} ms   max {max(latencies, default=float('nan')):7.2f} ms"
                  + ("" if busy_ms else f"   process CPU per line {cpu / max(len(latencies), 1) * 1e6:.0f} us"))
    finally:
        container.remove(force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
