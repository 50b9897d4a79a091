"""App logs: what the container printed (stdout and stderr, in order, timestamped by the
engine), as the last lines or as a live stream."""
import asyncio
import datetime
import functools
import threading
from collections.abc import AsyncIterator

import docker.errors
import requests.exceptions

from containers.engine import ContainerError, engine, find, get, must_get

LogLine = tuple[datetime.datetime | None, str]      # (when, as the engine stamped it; text)


def _parse_line(raw):
    """(datetime UTC or None, text) from one `timestamps=True` log line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    stamp, sep, rest = text.partition(" ")
    if sep and stamp.endswith("Z") and "T" in stamp:
        whole, _, frac = stamp[:-1].partition(".")
        try:
            when = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
                microsecond=int((frac + "000000")[:6]) if frac else 0, tzinfo=datetime.timezone.utc)
            return when, rest
        except ValueError:
            pass
    return None, text


def logs(app_id: str, lines: int | None = 100) -> list[LogLine]:
    """The last `lines` lines of the app container's output (stdout and stderr, in order) as
    [(timestamp, text)]; timestamps are aware UTC datetimes. No container: []."""
    return _logs(get(app_id), lines)


def service_logs(service: str, lines: int | None = 100) -> list[LogLine]:
    """logs() of an addon service's container (service_containers names it); none: []."""
    return _logs(_service_container(service), lines)


def _service_container(service):
    from containers.service_containers import service_container_name
    return find(service_container_name(service))


def _logs(container, lines):
    if container is None:
        return []
    with engine(f"Cannot read logs of {container.name}"):
        try:
            data = container.logs(stdout=True, stderr=True, timestamps=True,
                                  tail=int(lines) if lines is not None else "all")
        except docker.errors.NotFound:
            return []
    return [_parse_line(line) for line in data.split(b"\n") if line]


class LogFollower:
    """Blocking iterator over the app container's log lines as (timestamp, text), starting with the
    last `lines` lines. Ends when the container stops or close() is called (from any thread)."""

    def __init__(self, app_id: str, lines: int | None = 0, *, service: str | None = None,
                 since: float | None = None) -> None:
        # `service`: follow that addon service's container instead of an app's. `lines` None:
        # all of them; `since`: only lines stamped at or after that unix time.
        container = must_get(app_id) if service is None else _service_container(service)
        if container is None:
            raise ContainerError(f"The container of service {service} does not exist")
        with engine(f"Cannot follow logs of {container.name}"):
            self._stream = container.logs(stdout=True, stderr=True, timestamps=True, stream=True,
                                          follow=True, tail="all" if lines is None else int(lines),
                                          since=since)
        self._lines = self._split()
        self._closed = False

    def _split(self):
        buffer = b""
        for chunk in self._stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                yield _parse_line(line)
        if buffer and not self._closed:
            yield _parse_line(buffer)

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        try:
            return next(self._lines)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError):
            # The connection went away under us (close() from another thread, engine gone).
            raise StopIteration from None

    def close(self) -> None:
        self._closed = True
        try:
            self._stream.close()
        except (OSError, AttributeError, ValueError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def follow_logs(app_id: str, lines: int = 0) -> LogFollower:
    """A LogFollower (blocking; use it from a thread). Missing container: ContainerError."""
    return LogFollower(app_id, lines)


async def follow_logs_async(app_id: str, lines: int | None = 0, *, service: str | None = None,
                            since: float | None = None) -> AsyncIterator[LogLine]:
    """Async generator over the app's (or addon `service`'s) log lines (LogFollower's `lines` and
    `since`), read by a helper thread; closing the generator (or cancelling its consumer) closes
    the engine stream and ends the thread. One per followed log, not per client: app log streams
    share one (log_streams.stream_follower)."""
    loop = asyncio.get_running_loop()
    follower = await asyncio.to_thread(functools.partial(LogFollower, app_id, lines, service=service,
                                                         since=since))
    queue = asyncio.Queue()
    end = object()

    def pump():
        try:
            for item in follower:
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            return          # the event loop is closed: nobody is listening any more
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, end)
            except RuntimeError:
                pass

    thread = threading.Thread(target=pump, name=f"logs-{app_id}", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is end:
                return
            yield item
    finally:
        follower.close()
