"""The engine's log stream read on the event loop (containers.container_logs): chunked HTTP,
multiplexed frames or a TTY's raw bytes, split into lines as LogFollower splits the SDK's stream,
whatever byte boundaries the pieces arrive at; and the whole follow against a stand-in engine
on a unix socket (inspect, logs, 404, closing)."""
import asyncio
import datetime
import json
import struct

import pytest

from containers import container_logs
from containers.container_logs import ChunkedDecoder, ContainerError, EngineLogParser, LogFollower

T = "2026-12-05T09:00:00.123456789Z"
WHEN = datetime.datetime(2026, 12, 5, 9, 0, 0, 123456, tzinfo=datetime.timezone.utc)


def frame(stream, payload):
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def chunked(body, sizes=(7, 1, 300)):
    out, pos, i = b"", 0, 0
    while pos < len(body):
        piece = body[pos:pos + sizes[i % len(sizes)]]
        out += b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
        pos, i = pos + len(piece), i + 1
    return out + b"0\r\n\r\n"


def pieces(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def parse(parts, multiplexed=True, decoder=None):
    parser = EngineLogParser(multiplexed)
    lines = []
    for part in parts:
        lines += parser.feed(decoder.feed(part) if decoder else part)
    return lines + parser.end()


def sdk_split(payloads):
    """What LogFollower makes of the SDK's stream of frame payloads (or raw chunks)."""
    follower = LogFollower.__new__(LogFollower)
    follower._stream, follower._closed = iter(payloads), False
    return list(follower._split())


PAYLOADS = [f"{T} first line\n".encode(), f"{T} an error".encode(), b" continued\n",
            f"{T} caf\u00e9 \u2603\n".encode(), f"{T} ".encode() + b"x" * 20000 + b"\n",
            f"{T} no timestamp after this\n{T} two in one frame\n".encode(), b"\n", b"", f"{T} last".encode()]
STREAMS = [1, 2, 2, 1, 1, 2, 1, 1, 2]
FRAMES = b"".join(frame(s, p) for s, p in zip(STREAMS, PAYLOADS, strict=True))
EXPECTED = sdk_split(PAYLOADS)


def test_lines_are_split_as_log_follower_splits_the_sdk_stream():
    assert EXPECTED[0] == (WHEN, "first line")
    assert EXPECTED[1] == (WHEN, "an error continued")      # a line across frames (stderr)
    assert EXPECTED[2] == (WHEN, "caf\u00e9 \u2603")
    assert EXPECTED[-1] == (WHEN, "last")                    # unterminated: given at the end
    assert parse([FRAMES]) == EXPECTED


@pytest.mark.parametrize("size", [2, 3, 8, 9, 13, 4096, 65537])
def test_frames_split_at_any_byte_boundary(size):
    assert parse(pieces(FRAMES, size)) == EXPECTED


def test_every_single_split_point_of_a_header_and_a_multibyte_character():
    data = frame(1, f"{T} caf\u00e9\n".encode()) + frame(2, f"{T} two\n".encode())
    whole = parse([data])
    assert [text for _, text in whole] == ["caf\u00e9", "two"]
    for cut in range(len(data) + 1):
        for second in range(cut, len(data) + 1, 5):
            assert parse([data[:cut], data[cut:second], data[second:]]) == whole


def test_a_tty_raw_stream_is_not_deframed():
    raw = f"{T} tty line\r\n{T} and a partial".encode()
    expected = sdk_split([raw])
    assert expected == [(WHEN, "tty line"), (WHEN, "and a partial")]
    for size in (1, 4, 7, len(raw)):
        assert parse(pieces(raw, size), multiplexed=False) == expected


@pytest.mark.parametrize("size", [3, 10, 1000, 1 << 20])
def test_chunked_encoding_around_frames(size):
    body = chunked(FRAMES)
    decoder = ChunkedDecoder()
    assert parse(pieces(body, size), decoder=decoder) == EXPECTED
    assert decoder.done


def test_chunked_decoder_stops_at_the_last_chunk():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n0\r\n\r\n3\r\nxyz\r\n") == b"abc" and decoder.done
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(b"zz\r\n")


# --- against a stand-in engine on a unix socket ----------------------------------------------------

class Engine:
    """Answers GET /containers/<name>/json and /containers/<id>/logs like dockerd (chunked)."""

    def __init__(self, body, tty=False, exists=True, content_type="application/vnd.docker.raw-stream"):
        self.body, self.tty, self.exists, self.content_type = body, tty, exists, content_type
        self.requests, self.closed = [], asyncio.Event()

    async def handle(self, reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        target = head.split(" ")[1]
        self.requests.append(target)
        if not self.exists:
            body = b'{"message":"No such container: berth-app1"}'
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        elif target.endswith("/json"):
            body = json.dumps({"Id": "c0ffee", "Name": "/berth-app1", "Config": {"Tty": self.tty}}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                         % self.content_type.encode())
            for part in pieces(chunked(self.body), 11):
                writer.write(part)
                await writer.drain()
            if self.body.endswith(b"hold\n"):   # a running container: the stream stays open
                await reader.read()             # until the client goes away
                self.closed.set()
        writer.close()


async def follow(engine, tmp_path, **kw):
    path = str(tmp_path / "docker.sock")
    server = await asyncio.start_unix_server(engine.handle, path)
    async with server:
        stream = container_logs._follow_natively(("unix", path), "app1", kw.get("lines", 0), None, kw.get("since"))
        got = []
        try:
            async for line in stream:
                got.append(line)
                if line[1] == "hold":
                    await stream.aclose()
                    await asyncio.wait_for(engine.closed.wait(), 5)
        finally:
            await stream.aclose()
        return got


def test_native_follow_reads_the_engines_chunked_multiplexed_stream(tmp_path):
    engine = Engine(FRAMES)
    got = asyncio.run(follow(engine, tmp_path, lines=None, since=1714564800.5))
    assert got == EXPECTED
    assert engine.requests[0] == "/containers/berth-app1/json"
    assert engine.requests[1] == ("/containers/c0ffee/logs?stdout=1&stderr=1&timestamps=1&follow=1&tail=all"
                                  "&since=1714564800.5")


def test_native_follow_of_a_tty_container_and_an_engine_naming_the_stream(tmp_path):
    raw = f"{T} tty line\n".encode()
    assert asyncio.run(follow(Engine(raw, tty=True), tmp_path)) == [(WHEN, "tty line")]
    framed = Engine(frame(1, f"{T} framed\n".encode()), content_type=container_logs.MULTIPLEXED)
    assert asyncio.run(follow(framed, tmp_path)) == [(WHEN, "framed")]


def test_closing_the_stream_closes_the_engine_connection_at_once(tmp_path):
    engine = Engine(frame(1, f"{T} hold\n".encode()))
    assert asyncio.run(follow(engine, tmp_path)) == [(WHEN, "hold")]   # follow() waited for the close


def test_native_follow_of_a_missing_container_says_it_does_not_exist(tmp_path):
    with pytest.raises(ContainerError, match="Container berth-app1 does not exist"):
        asyncio.run(follow(Engine(b"", exists=False), tmp_path))


def test_unreachable_engine_is_a_container_error(tmp_path):
    async def main():
        async for _ in container_logs._follow_natively(("unix", str(tmp_path / "none.sock")), "app1", 0, None, None):
            pass
    with pytest.raises(ContainerError, match="Docker engine not reachable"):
        asyncio.run(main())


def test_a_container_printing_without_newlines_keeps_the_buffer_bounded():
    from containers import container_logs
    parser = container_logs.EngineLogParser(multiplexed=False)
    got = []
    for _ in range(40):
        got += parser.feed(b"x" * 10_000)
    assert got and all(len(text) <= container_logs.MAX_LINE + 10_000 for _, text in got)
    assert len(parser._text) <= container_logs.MAX_LINE
    assert sum(len(text) for _, text in got) + len(parser._text) == 400_000
