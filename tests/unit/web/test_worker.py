"""web.worker.SharedSocketServer: how a worker takes connections off a listening socket it shares
with the other gunicorn workers. Two servers on one socket in one event loop stand for two
workers woken by the same arrivals (real sockets on 127.0.0.1, the loops Berth runs on)."""
import asyncio
import os
import socket

import pytest

from web.worker import ACCEPT_BATCH, SharedSocketServer

try:
    import uvloop
except ImportError:  # uvicorn[standard] brings it on Linux; asyncio's loop is tested either way
    uvloop = None

LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio")]
if uvloop is not None:
    LOOPS.append(pytest.param(uvloop.new_event_loop, id="uvloop"))


class Recorder(asyncio.Protocol):
    """A connection's protocol; `shutdown` as uvicorn's protocols have it."""

    def __init__(self, made):
        self.made = made
        self.transport = None
        self.shut_down = False

    def connection_made(self, transport):
        self.transport = transport
        self.made.append(self)

    def shutdown(self):
        self.shut_down = True
        self.transport.close()


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    clients = []

    def connect(n):
        for _ in range(n):  # loopback: the kernel completes the handshake; the connection waits in the queue
            clients.append(socket.create_connection(sock.getsockname(), timeout=5))

    yield sock, connect
    for c in clients:
        c.close()
    sock.close()


def shared_copy(sock):
    """The same listening socket under another descriptor, as each forked worker holds it."""
    return socket.socket(fileno=os.dup(sock.fileno()))


async def until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def two_workers(sock, batch):
    """Two servers on one listening socket (as two gunicorn workers share theirs) take the 16
    waiting connections: how many each got."""
    loop = asyncio.get_running_loop()
    made_a, made_b = [], []
    copy = shared_copy(sock)
    servers = [SharedSocketServer(loop, sock, lambda: Recorder(made_a), batch=batch),
               SharedSocketServer(loop, copy, lambda: Recorder(made_b), batch=batch)]
    for s in servers:
        await s.start_serving()
    await until(lambda: len(made_a) + len(made_b) == 16)
    for s in servers:
        s.close()
    copy.close()
    for p in made_a + made_b:
        p.transport.close()
    await asyncio.sleep(0.01)
    return len(made_a), len(made_b)


def run(new_loop, coro):
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_burst_of_connections_is_shared_by_two_workers_on_one_socket(listener, new_loop):
    sock, connect = listener
    connect(16)  # all waiting at once, like wrk opening its connections

    a, b = run(new_loop, two_workers(sock, batch=ACCEPT_BATCH))
    assert a >= 4 and b >= 4, (a, b)


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_worker_that_takes_everything_per_wakeup_leaves_the_other_idle(listener, new_loop):
    """The behaviour being fixed, for contrast: the loop's own accept loop empties the queue."""
    sock, connect = listener
    connect(16)

    assert sorted(run(new_loop, two_workers(sock, batch=1000))) == [0, 16]


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_closed_server_leaves_new_connections_queued_for_the_others(listener, new_loop):
    sock, connect = listener

    async def serve():
        loop = asyncio.get_running_loop()
        made = []
        server = SharedSocketServer(loop, sock, lambda: Recorder(made))
        await server.start_serving()
        assert server.is_serving()
        connect(1)
        await until(lambda: len(made) == 1)
        server.close()
        assert not server.is_serving()
        connect(1)
        await asyncio.sleep(0.05)
        made[0].transport.close()
        await asyncio.sleep(0.01)
        return len(made)

    assert run(new_loop, serve()) == 1
    sock.settimeout(5)
    conn, _ = sock.accept()  # still in the kernel's queue: another worker would take it
    conn.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_connection_set_up_after_close_is_asked_to_shut_down(listener, new_loop):
    """Accepted just before uvicorn's shutdown asked every connection to close, set up just
    after: it must not live on as a keep-alive connection holding the worker's exit."""
    sock, connect = listener
    connect(1)

    async def serve():
        loop = asyncio.get_running_loop()
        made = []
        server = SharedSocketServer(loop, sock, lambda: Recorder(made))
        sock.setblocking(False)
        server._accept()  # taken off the queue; its transport is set up on the next turns
        server.close()
        await until(lambda: len(made) == 1)
        await asyncio.sleep(0.01)
        return made[0]

    protocol = run(new_loop, serve())
    assert protocol.shut_down and protocol.transport.is_closing()
