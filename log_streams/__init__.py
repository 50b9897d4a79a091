"""Log lines, line sources and log files followed live: the parts of log streaming that know
no web framework. web.event_stream serves these sources as Server-Sent Events.

- `lines`: the Cloudron log format (`<ISO timestamp> <message>`), LogLine and its id (the
  realtimeTimestamp in microseconds, strictly increasing per log, so a client can resume).
- `sources`: the line source protocol (`await next_batch(timeout)`, `close()`), a fixed list
  of lines, an adapter for any async iterator of lines (e.g. `docker logs -f`), and a stamped
  log (a container's output) replayed and then followed.
- `file_follower`: the tail of a log file, and ONE poller per followed file shared by all its
  clients in this process.
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

__all__ = ["HEARTBEAT_SECS", "IterSource", "LineSource", "LogLine", "StaticSource", "follow_file", "format_line",
           "format_timestamp", "now_us", "parse_lines", "parse_timestamp", "read_tail", "replay_then_follow",
           "run_blocking", "stamped_line", "strictly_increasing"]
