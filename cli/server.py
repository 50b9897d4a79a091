"""Commands that run on the server itself: migrate the database, serve the API, report API
coverage. Everything else in `berth` is a client of the API (cli.client)."""
import importlib
import os
import sys

import click

from core import config

# Connexion 3 apps are ASGI: uvicorn's gunicorn worker, which with several workers shares a burst
# of new connections between them (web/worker.py says why).
WORKER_CLASS = "web.worker.BerthWorker"


def _load_config():
    try:
        return config.load()
    except config.ConfigError as e:
        sys.exit(f"berth: configuration error: {e}")


def _migrate(cfg):
    from models import migrations, open_database
    from web.startup import make_data_dir_private
    make_data_dir_private(cfg)  # umask 077, data dir 0700, database files 0600
    open_database(cfg.database_url)
    applied = migrations.migrate()
    print(f"berth: database at schema version {migrations.current_version()}"
          + (f" (applied {applied})" if applied else ""))


def _serve(cfg, workers):
    # X-Forwarded-For / -Proto are believed only from BERTH_TRUSTED_PROXIES (none by default):
    # gunicorn would otherwise trust 127.0.0.1, and the client address feeds the login throttle
    # and the event log. Access log lines are redacted by the app (web.access_log).
    argv = ["gunicorn", "-k", WORKER_CLASS, "-w", str(workers), "-b", f"{cfg.host}:{cfg.port}",
            "--graceful-timeout", "10", "--no-control-socket", "--access-logfile", "-",
            "--forwarded-allow-ips", ",".join(cfg.trusted_proxies), "wsgi:app"]
    # Every worker writes its metrics samples to files a scrape sums (prometheus-client's
    # multiprocess mode); the variable must be set before any worker imports the library.
    from metrics.exposition import prepare_shared_files
    os.environ.update(PROMETHEUS_MULTIPROC_DIR=prepare_shared_files(cfg.data_dir))
    # Thousands of log stream clients are thousands of sockets: the soft open-file limit goes up
    # to the hard one before gunicorn starts (its workers inherit it).
    from web.startup import raise_open_file_limit
    raise_open_file_limit()
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository: wsgi.py
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execv(gunicorn, argv)


@click.command()
def migrate():
    """Create or upgrade the database schema."""
    _migrate(_load_config())


@click.command()
@click.option("--workers", type=click.IntRange(min=1), default=None, help="default: BERTH_WORKERS or 1")
def serve(workers):
    """Run the API server (gunicorn)."""
    cfg = _load_config()
    _migrate(cfg)
    _serve(cfg, workers or cfg.workers)


@click.command("api-coverage")
def api_coverage():
    """Implemented/total operations of openapi.yaml (a 501 stub is not implemented)."""
    from web import spec as contract
    spec = contract.load_spec()
    total, done, missing = 0, 0, {}
    for op_id, method, path, _ in contract.operations(spec):
        total += 1
        module, _, name = op_id.rpartition(".")
        if name in vars(importlib.import_module(module)):
            done += 1
        else:
            missing.setdefault(module.split(".")[-1], []).append(f"{method} {path}")
    for tag, routes in sorted(missing.items()):
        print(f"  {tag}: {len(routes)} not implemented")
        for route in routes:
            print(f"    {route}")
    print(f"API coverage: {done}/{total} operations implemented ({100 * done // total}%)")


COMMANDS = (migrate, serve, api_coverage)
