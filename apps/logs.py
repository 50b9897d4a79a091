"""An app's log: its container's output, as log lines for download and for log streams.

Log streams of one app share ONE engine log follower in this process (log_streams.
stream_follower): 5,000 clients of an app are one `docker logs -f` connection, not 5,000."""
import containers
import log_streams
from core.errors import PreconditionFailed
from log_streams import stream_follower
from models.apps import App


def check_available(app_id: str) -> None:
    """Logs come from the container: none yet (e.g. its image never arrived) is a 412."""
    if containers.inspect(app_id) is None:
        raise PreconditionFailed("The app has no container yet, so it has no log")


def tail(app_id: str, lines: int | None = 10) -> list[log_streams.LogLine]:
    count = 100000 if lines is None or lines < 0 else lines
    return log_streams.strictly_increasing([log_streams.stamped_line(app_id, ts, text)
                                            for ts, text in containers.logs(app_id, count)])


def download(app_id: str, lines: int | None = 10, fmt: str = "json") -> str:
    rows = tail(app_id, lines)
    if fmt == "json":
        return "".join(row.json() + "\n" for row in rows)
    return "".join(row.raw + "\n" for row in rows)


def _uninstalled(app_id: str) -> bool:
    return not App.select().where(App.id == app_id).exists()


async def follow(app_id: str, lines: int | None = 10, after: int | None = None) -> log_streams.LineSource:
    """A logstream line source: the last `lines` lines (or those after `after`), then new ones,
    across restarts and re-creations of the container, until the app is uninstalled."""
    if not stream_follower.running(app_id):  # a running follower: the container exists
        await log_streams.run_blocking(check_available, app_id)

    async def finished() -> bool:
        return await log_streams.run_blocking(_uninstalled, app_id)

    def open_stream(since):
        return containers.follow_logs_async(app_id, lines=None, since=since)
    return await log_streams.follow_stream(app_id, app_id, lambda count: tail(app_id, count), open_stream,
                                           finished, lines, after)
