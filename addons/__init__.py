"""App addons (Cloudron manifest `addons`): databases, mail and storage an app declares.

    errors.py      AddonError (424) naming the addon and why
    images.py      the image of each database service: configured, pulled, or built from Debian packages
    services.py    the shared PostgreSQL/MySQL servers and per-app Redis containers: ensure, status, heal
    postgresql.py, mysql.py, redis.py   per-app provision / deprovision / dump / load (Cloudron's env)
    databases.py   what postgresql.py and mysql.py share (their SQL and client programs stay in each)
    credentials.py the stored per-app credentials and service rows
"""
from addons.errors import AddonError  # noqa: F401
