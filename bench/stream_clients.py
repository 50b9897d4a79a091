#!/usr/bin/env python3
"""The clients of bench/streams.py: EventSource clients on raw asyncio sockets, a protocol object
each (no thread per client), so one process holds thousands of connections. Run by the bench:

    stream_clients.py --n 2500 --port P --offset 0 --targets '[[path, token], ...]'

Prints `connected` once every client got its response headers (or gave up), then, when its
stdin closes (the bench says the lines are over), one JSON line: per client the (tick, seconds
late) of each line it received, and the errors by kind.
"""
import argparse
import asyncio
import json
import re
import sys
import time

CONNECT_TIMEOUT = 60.0  # a client without response headers by then counts as refused
RETRY_SECS = 3.0        # EventSource's reconnection delay (the server's `retry: 3000`)
RETRIES = 5             # reconnections a client makes before it counts as refused
OPENING = 500           # connections a client process has waiting for their headers at once

TS = re.compile(rb'"realtimeTimestamp":(\d+),"message":"tick (\d+)"')


class _Client(asyncio.Protocol):
    """One EventSource connection as a bare protocol: the event loop hands it each chunk as it
    arrives (no StreamReader, no coroutine to wake per chunk), so a client costs little more than
    its read and the arrival time is taken first thing in the callback."""

    def __init__(self, request, out):
        self.request, self.out = request, out
        self.head, self.tail, self.started = b"", b"", None
        self.headers = asyncio.get_running_loop().create_future()   # the status line, or an error
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.time()
        if not self.headers.done():
            self.head += data
            head, sep, data = self.head.partition(b"\r\n\r\n")
            if not sep:
                return
            self.headers.set_result(head.split(b"\r\n", 1)[0])
        buf = self.tail + data
        end = 0
        for m in TS.finditer(buf):
            self.out.append((int(m.group(2)), round(now - int(m.group(1)) / 1e6, 6)))
            end = m.end()
        self.tail = buf[max(end, len(buf) - 200):]
        if b"\r\n0\r\n\r\n" in buf:  # last chunk: the log ended
            self.transport.close()

    def connection_lost(self, exc):
        if not self.headers.done():
            self.headers.set_exception(exc or asyncio.IncompleteReadError(self.head, None))
        if not self.closed.done():
            self.closed.set_result(None)


async def _one_client(port, path, token, connected, out, opening):
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    transport = None
    try:
        async with opening, asyncio.timeout(CONNECT_TIMEOUT):
            transport, client = await asyncio.get_running_loop().create_connection(
                lambda: _Client(request, out), "127.0.0.1", port)
            status = await client.headers
        if b" 200 " not in status + b" ":
            raise RuntimeError(status.decode(errors="replace"))
        connected()
        await client.closed
    finally:
        if transport is not None:
            transport.close()


class _State:
    """Counts clients that got their response headers or gave up; says so once all did."""

    def __init__(self, n):
        self.n, self.done = n, 0

    def finished_connecting(self):
        self.done += 1
        if self.done == self.n:
            print("connected", flush=True)


async def _clients(args):
    targets = json.loads(args.targets)  # [[path, token], ...] cycled over the clients
    state = _State(args.n)
    opening = asyncio.Semaphore(OPENING)
    results = [[] for _ in range(args.n)]
    errors = {}

    async def client(i):
        path, token = targets[(args.offset + i) % len(targets)]
        connected = []

        def mark():
            connected.append(True)
            state.finished_connecting()
        for attempt in range(RETRIES + 1):
            try:
                # `opening`: a crowd arriving, not 5,000 SYNs in the same millisecond
                await _one_client(args.port, path, token, mark, results[i], opening)
                return
            except asyncio.CancelledError:
                return  # the run is over
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                # As EventSource does: a connection refused or reset before the response is
                # tried again after the retry delay (the listen queue overflowed meanwhile).
                if connected or attempt == RETRIES:
                    error = e
                    break
                await asyncio.sleep(RETRY_SECS)
            except Exception as e:  # noqa: BLE001 - counted, not fatal
                error = e
                break
        key = ("dropped: " if connected else "refused: ") + repr(error)[:120]
        errors[key] = errors.get(key, 0) + 1
        if not connected:
            state.finished_connecting()
    tasks = []
    for i in range(args.n):  # open in waves so the listen backlog is never the limit
        tasks.append(asyncio.create_task(client(i)))
        if i % 200 == 199:
            await asyncio.sleep(0.02)
    # The parent closes our stdin when the lines are over (app logs do not end by themselves).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"errors": errors, "results": results}), flush=True)


def client_main(argv):
    p = argparse.ArgumentParser()
    for name, kind in (("--n", int), ("--port", int), ("--offset", int), ("--targets", str)):
        p.add_argument(name, type=kind)
    try:
        import uvloop  # the clients must not be the bottleneck of what they measure
        uvloop.install()
    except ImportError:
        pass
    import os
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # The clients stand for remote machines but share the server's cores here. Woken by every
    # line the server sends, a normal-policy client preempts the server mid fan-out; as batch
    # work they still get their fair share of CPU, just not by preempting on wake-up.
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    asyncio.run(_clients(p.parse_args(argv)))


if __name__ == "__main__":
    client_main(sys.argv[1:])
