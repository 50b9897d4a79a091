"""follow_logs_async reads the engine's log stream itself (containers.container_logs): against
the real engine it gives the very lines the SDK path (a LogFollower read by a thread, kept for
ssh:// and TLS engines) gives, for a container with a TTY and one without (stdout and stderr, a
last line without a newline), and ends when the container stops."""
import asyncio
import uuid

import pytest

import containers
from containers import container_logs
from containers.engine import LABEL_INSTANCE, LABEL_MANAGED, instance_id
from support import images

RUN = uuid.uuid4().hex[:8]
SCRIPT = ("echo out-one; echo err-one >&2; sleep 0.2; printf 'caf\\303\\251 two\\n'; sleep 0.2; "
          "echo err-two >&2; sleep 0.2; printf 'no newline'")


def run_script(engine, tty):
    """A container of the test image that prints SCRIPT's lines and exits; its app id."""
    app_id = f"n{RUN}-{'tty' if tty else 'plain'}"
    container = engine.containers.run(
        images.httpd_image(engine), entrypoint=["/bin/sh", "-c", SCRIPT], name=containers.container_name(app_id),
        tty=tty, detach=True, labels={LABEL_MANAGED: "1", LABEL_INSTANCE: instance_id(), "berth.test-run": RUN})
    assert container.wait(timeout=30)["StatusCode"] == 0
    return app_id


async def collect(stream):
    try:
        return [line async for line in stream]
    finally:
        await stream.aclose()


@pytest.mark.parametrize("tty", [False, True])
def test_native_stream_gives_the_lines_the_sdk_thread_gives(engine, tty):
    app_id = run_script(engine, tty)
    native = asyncio.run(asyncio.wait_for(collect(containers.follow_logs_async(app_id, lines=None)), 20))
    threaded = asyncio.run(asyncio.wait_for(collect(container_logs._follow_in_thread(app_id, None, None, None)), 20))
    texts = [text for _, text in native]
    assert sorted(texts) == sorted(["out-one", "err-one", "caf\u00e9 two", "err-two", "no newline"])
    assert all(when is not None for when, _ in native)
    assert native == threaded
    since = native[2][0].timestamp()
    later = asyncio.run(asyncio.wait_for(collect(containers.follow_logs_async(app_id, lines=None, since=since)), 20))
    assert later == native[2:]


def test_follow_logs_async_of_a_missing_container(engine):
    async def first():
        async for line in containers.follow_logs_async(f"n{RUN}-none"):
            return line
    with pytest.raises(containers.ContainerError, match="does not exist"):
        asyncio.run(first())
