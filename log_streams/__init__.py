"""Log lines, line sources and log files followed live: the parts of log streaming that know
no web framework. web.event_stream serves these sources as Server-Sent Events.

- `lines`: the Cloudron log format (`<ISO timestamp> <message>`), LogLine and its id (the
  realtimeTimestamp in microseconds, strictly increasing per log, so a client can resume).
- `sources`: the line source protocol (`await next_batch(timeout)`, `close()`), a fixed list
  of lines, an adapter for any async iterator of lines (e.g. `docker logs -f`), and a stamped
  log (a container's output) replayed and then followed.
- `shared_follower`: ONE follower per followed log shared by all its clients in this process
  (a buffer of lines, a cursor per client, wake-ups handed out in chunks), the base of:
- `file_follower`: the tail of a log file, and ONE poller per followed file (task logs);
- `stream_follower`: ONE engine log stream per app container (app logs), replay from memory.
"""
from log_streams.file_follower import follow_file, read_tail
from log_streams.lines import (
    LogLine,
    format_line,
    format_timestamp,
    now_us,
    parse_lines,
    parse_timestamp,
    stamped_line,
    strictly_increasing,
)
from log_streams.sources import HEARTBEAT_SECS, IterSource, LineSource, StaticSource, replay_then_follow, run_blocking
from log_streams.stream_follower import follow_stream


def follower_counts() -> dict[str, int]:
    """Followers running in this process per kind: `file` (task logs), `engine` (app logs)."""
    from log_streams import file_follower, stream_follower
    return {"file": len(file_follower._followers), "engine": stream_follower.count()}


__all__ = ["HEARTBEAT_SECS", "IterSource", "LineSource", "LogLine", "StaticSource", "follow_file", "follow_stream",
           "format_line", "format_timestamp", "now_us", "parse_lines", "parse_timestamp", "read_tail",
           "replay_then_follow", "run_blocking", "stamped_line", "strictly_increasing"]
