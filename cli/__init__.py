"""`berth` command: migrate the database, serve the API, report API coverage."""
import argparse
import os
import sys

from core import config
from web.startup import make_data_dir_private

WORKER_CLASS = "uvicorn_worker.UvicornWorker"  # Connexion 3 apps are ASGI


def _migrate(cfg):
    from models import migrations, open_database
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
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository: wsgi.py
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execv(gunicorn, argv)


def _coverage():
    """Print implemented/total operations of openapi.yaml (a 501 stub is not implemented)."""
    import importlib

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
    print(f"API coverage: {done}/{total} operations implemented ({100 * done // total}%)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="berth")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema")
    serve = sub.add_parser("serve", help="run the API server (gunicorn)")
    serve.add_argument("--workers", type=int, default=None, help="default: BERTH_WORKERS or 1")
    sub.add_parser("api-coverage", help="implemented/total operations of openapi.yaml")
    args = parser.parse_args(argv)
    try:
        cfg = config.load()
        if args.command in ("migrate", "serve"):
            _migrate(cfg)
    except config.ConfigError as e:
        sys.exit(f"berth: configuration error: {e}")
    if args.command == "serve":
        _serve(cfg, args.workers or cfg.workers)
    elif args.command == "api-coverage":
        _coverage()


if __name__ == "__main__":
    main()
