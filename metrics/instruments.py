"""The metrics Berth's processes record as things happen (requests, database queries, open log
streams). Everything derived from the database (tasks, apps, backups, certificates) is read at
scrape time instead (metrics.collectors), so it is right whichever process did the work.

With several gunicorn workers each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (set by `berth serve` before any worker starts, see cli.server) and a
scrape sums them: prometheus-client's multiprocess mode. The variable must be set before
prometheus_client is first imported, which is why nothing imports this module at package level.
"""
from prometheus_client import Counter, Gauge, Histogram, values

# The library chose its value class from the environment when it was imported.
MULTIPROCESS = values.ValueClass is not values.MutexValue

# Request latencies of a control plane: most answers take milliseconds, log streams and uploads
# far longer (those are counted but their duration is the stream's life, hence the 60 s bucket).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
_QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5)

requests_total = Counter(
    "berth_http_requests", "API requests answered, per operation and status",
    ["operation", "method", "status"])
request_seconds = Histogram(
    "berth_http_request_duration_seconds", "Time to answer an API request (to the last body byte)",
    ["operation", "status"], buckets=_LATENCY_BUCKETS)
db_query_seconds = Histogram(
    "berth_db_query_duration_seconds", "Time of each SQL statement the API server ran",
    buckets=_QUERY_BUCKETS)
log_stream_clients = Gauge(
    "berth_log_stream_clients", "Log stream (Server-Sent Events) clients connected now",
    multiprocess_mode="livesum")
log_stream_followers = Gauge(
    "berth_log_stream_followers", "Followed logs now: ONE follower per log (a task's file, an app's "
    "engine stream) whatever its number of clients", ["kind"], multiprocess_mode="livesum")
