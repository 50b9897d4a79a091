"""Entry point for gunicorn: `gunicorn -k uvicorn_worker.UvicornWorker wsgi:app`.

Connexion 3 apps are ASGI; the uvicorn worker class runs them under gunicorn.
"""
import sys

from core import config

try:
    from web.app import create_app
    app = create_app()
except config.ConfigError as e:
    sys.stderr.write(f"berth: configuration error: {e}\n")
    sys.exit(3)
