"""The gunicorn worker class Berth is served with: uvicorn's, taking connections off gunicorn's
shared listening socket a few at a time, so that several workers share a burst of them.

Why: gunicorn's master owns one listening socket that every worker serves. A worker's event loop
(uvloop, through libuv; asyncio does the same up to the backlog) accepts every connection waiting
in the kernel's queue each time the socket becomes readable, and every worker is woken by the
same arrival. Connections opened at once (a client pool, a proxy reconnecting, wrk's 16 keep-alive
connections in bench/api.py) then mostly land in the worker that ran first, and the other worker
idles for as long as they live: BERTH_WORKERS=2 measured 1.02x one worker in two rounds of three
and 1.95x in the round where they split (one worker held 13 to 16 of wrk's 16 connections in
most rounds measured since). Here a worker takes at most
ACCEPT_BATCH connections per readiness event; when the batch was full (a burst: more were
waiting) it leaves the socket alone for ACCEPT_PAUSE and goes on with its other work, so the
other workers, woken by the same arrivals, take their share off the queue meanwhile.

Why not one SO_REUSEPORT socket per worker (the kernel spreads connections by a hash): the
master's socket would stay in the group and still need serving, a connection queued on a
worker's own socket is reset when that worker exits (graceful reloads, restarts), and a worker
busy with a long request still gets its share of new connections. With the shared queue, one
port, gunicorn's reloads and the kernel's listen backlog (gunicorn's, 2048: nothing here calls
listen() again) stay as they were; only who takes a connection off the queue changes.
EPOLLEXCLUSIVE, the kernel's own answer to the herd, is not reachable through asyncio or uvloop.

With one worker there is nobody to share with: the loop's own server serves the socket (libuv's
accept loop in C), exactly as uvicorn's worker does.
"""
import asyncio
import errno
import functools
import logging
import socket
import struct
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

logger = logging.getLogger("uvicorn.error")

# Connections one worker takes per readiness event, and how long it then leaves the socket to the
# others when the batch was full (more were waiting: a burst). Taking fewer per event alone is not
# enough: a loop turn with nothing else to do is ~50 us, so the first worker still emptied a burst
# of 16 in under a millisecond, before the other (woken by the same arrival, on a busy 2-core
# machine) got a core. With the pause, 16 connections from wrk split between 8/8 and 4/12 in 8
# rounds on the busy machine; before, 16/0, 14/2 or 13/3 in most rounds. A single arrival is
# accepted at once; the pause only spaces out a burst.
ACCEPT_BATCH = 2
ACCEPT_PAUSE = 0.001  # seconds
# A flood is different: paced at 2 per millisecond, thousands of clients connecting at once (log
# streams, bench/streams.py) overflowed the kernel's queue (gunicorn's backlog, 2048), and each
# connection dropped there waits for the client's SYN retry (1 s, then 3 s): 3,000 connections
# opened at once took 8.7-10.3 s to be answered by two workers, against 3.1-3.9 s with the loop's
# own accept loop. So while more than FLOOD_QUEUE connections wait (the kernel says how many a
# listening socket holds: TCP_INFO's tcpi_unacked), a worker takes up to FLOOD_BATCH per event
# without pausing; every worker is busy taking them then, so none idles. 1,800 connections opened
# at once (one request each) were then answered by two workers in 1.65-1.89 s, against 1.80-4.39 s
# with the loop's own accept loop.
FLOOD_QUEUE = 64
FLOOD_BATCH = 128
ACCEPT_RETRY_DELAY = 1.0  # seconds without accepting after running out of descriptors (as asyncio)
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class SharedSocketServer(asyncio.AbstractServer):
    """Serves a listening socket shared with other processes, ACCEPT_BATCH connections per
    readiness event; each accepted socket goes to the loop's connect_accepted_socket (the same
    transport and protocol the loop's own server would make). Closing stops accepting; the
    socket itself belongs to gunicorn and is closed by uvicorn's shutdown."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol_factory,
                 ssl=None, batch: int = ACCEPT_BATCH):
        self._loop = loop
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._ssl = ssl
        self._batch = batch
        self._started = self._watching = self._closed = False
        self._connecting = set()  # tasks of connections being set up (kept referenced)

    # ---- asyncio.AbstractServer ------------------------------------------------------------------

    @property
    def sockets(self):
        return (self._sock,)

    def get_loop(self):
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed and self._started

    async def start_serving(self) -> None:
        if not self._closed and not self._started:
            self._started = True
            self._sock.setblocking(False)  # O_NONBLOCK is the shared file's: gunicorn's workers all set it
            self._watch()

    def close(self) -> None:
        self._closed = True
        self._unwatch()

    async def wait_closed(self) -> None:
        return None  # uvicorn has already waited for its connections when it calls this

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.Event().wait()

    # ---- accepting ------------------------------------------------------------------------------

    def _accept(self) -> None:
        flood = _waiting(self._sock) > FLOOD_QUEUE
        for _ in range(FLOOD_BATCH if flood else self._batch):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty (another worker took what was there)
            except ConnectionAbortedError:
                continue  # the client gave up while it waited in the queue
            except OSError as e:
                if e.errno not in _OUT_OF_RESOURCES:
                    raise
                # Out of descriptors or memory: the connection stays queued in the kernel. Stop
                # trying for a second rather than spin on a socket that stays readable.
                logger.error("accepting a connection failed (%s); retrying in %.0f s", e, ACCEPT_RETRY_DELAY)
                self._pause(ACCEPT_RETRY_DELAY)
                return
            conn.setblocking(False)
            connecting = self._loop.connect_accepted_socket(self._protocol_factory, conn, ssl=self._ssl)
            task = self._loop.create_task(connecting)
            self._connecting.add(task)
            task.add_done_callback(functools.partial(self._connected, conn))
        if not flood:
            # A full batch, and more may be waiting: a burst. Step aside for a moment, so that the
            # other workers, woken by the same arrivals, get their share before this one takes more.
            self._pause(ACCEPT_PAUSE)

    def _pause(self, seconds: float) -> None:
        self._unwatch()
        self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        if not self._closed:
            self._watch()

    def _watch(self) -> None:
        if not self._watching:
            self._loop.add_reader(self._sock.fileno(), self._accept)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self._sock.fileno())

    def _connected(self, conn: socket.socket, task: asyncio.Task) -> None:
        self._connecting.discard(task)
        if task.cancelled():
            conn.close()
        elif task.exception() is not None:
            # As asyncio's own server does: the connection could not be set up; drop it.
            logger.error("setting up an accepted connection failed: %r", task.exception())
            conn.close()
        elif self._closed:
            # Accepted before the server closed, set up after uvicorn asked its connections to
            # shut down: it would otherwise stay open as a keep-alive connection and hold the
            # worker's graceful exit until gunicorn's timeout.
            _transport, protocol = task.result()
            protocol.shutdown()


def _waiting(sock) -> int:
    """Connections waiting in a listening socket's accept queue (Linux: TCP_INFO of a listening
    socket gives its queue length as tcpi_unacked, a u32 at offset 24); 0 when unknown."""
    try:
        return struct.unpack_from("=I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32), 24)[0]
    except (OSError, AttributeError, struct.error):
        return 0


class _Server(Server):
    """uvicorn's server, listening through SharedSocketServer instead of loop.create_server."""

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])  # the app's lifespan start-up; no listener yet
        if not self.started or not sockets:
            return
        config = self.config

        def create_protocol(_loop=None):  # as uvicorn's startup makes it
            return config.http_protocol_class(config=config, server_state=self.server_state,
                                              app_state=self.lifespan.state, _loop=_loop)

        loop = asyncio.get_running_loop()
        for sock in sockets:
            server = SharedSocketServer(loop, sock, create_protocol, ssl=config.ssl)
            await server.start_serving()
            self.servers.append(server)


class BerthWorker(UvicornWorker):
    """uvicorn's gunicorn worker; with more than one worker, sockets served by SharedSocketServer."""

    async def _serve(self) -> None:
        if self.cfg.workers < 2:  # nobody to share with
            return await super()._serve()
        self.config.app = self.wsgi
        server = _Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)  # uvicorn's shutdown closes the sockets
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
