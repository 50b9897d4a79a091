"""What the locally built addon image is made of: the Debian packages, the configuration files
and the entrypoints. Its hash names the images (berth-local/<service>:<hash>), so changing any
of it builds a new image instead of reusing a stale one.

The entrypoints follow the official images' documented interface, so addons/services.py runs
either image the same way:
    postgres:  POSTGRES_PASSWORD (and POSTGRES_USER), data in /var/lib/postgresql/data (PGDATA),
               5432 on every address with scram-sha-256 password auth, local socket trusted;
               `postgres` (or -flags) starts the server, any other command runs as given.
    mariadb:   MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD) for root@'%' and root@localhost,
               data in /var/lib/mysql, 3306 on every address; `mariadbd` starts the server.
    redis:     `redis-server [args]` (or just args) in /data as user redis.
"""
import hashlib
import json

SUITE = "bookworm"
PACKAGES = ("postgresql-15", "mariadb-server", "redis-server")
PG_BIN = "/usr/lib/postgresql/15/bin"
# Left out of the image: documentation, translations, package caches and the default database
# clusters the packages' install scripts made (each entrypoint initialises its own data folder).
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
        "var/cache/apt/archives", "var/lib/apt/lists", "var/cache/debconf/templates.dat-old",
        "var/lib/postgresql/15", "etc/postgresql/15", "var/lib/mysql", "var/log")

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# Berth's stand-in for the official postgres image entrypoint (same variables, same data folder).
set -eu
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
[ $# -eq 0 ] && set -- postgres
case "$1" in -*) set -- postgres "$@" ;; esac
[ "$1" = postgres ] || exec "$@"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  find "$PGDATA" /run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is not set" >&2; exit 1; }
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" --username="${POSTGRES_USER:-postgres}" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "PostgreSQL init process complete; ready for start up."
fi
unset POSTGRES_PASSWORD
exec "$@"
"""

MARIADB_ENTRYPOINT = r"""#!/bin/sh
# Berth's stand-in for the official mariadb image entrypoint (same variables, same data folder).
set -eu
[ $# -eq 0 ] && set -- mariadbd
case "$1" in -*) set -- mariadbd "$@" ;; esac
case "$1" in mariadbd|mysqld) ;; *) exec "$@" ;; esac
DATADIR=/var/lib/mysql
mkdir -p "$DATADIR" /run/mysqld
find "$DATADIR" /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
if [ ! -d "$DATADIR/mysql" ]; then
  password="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
  [ -n "$password" ] || { echo "MARIADB_ROOT_PASSWORD is not set" >&2; exit 1; }
  mariadb-install-db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/dev/null
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb-admin --socket=/run/mysqld/init.sock -uroot ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 120 ] || { echo "mariadbd did not start" >&2; exit 1; }; sleep 0.5
  done
  quoted=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")
  # root only on the socket (localhost) and from anywhere with the password, as the official image
  mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';
FLUSH PRIVILEGES;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$quoted';
CREATE USER 'root'@'%' IDENTIFIED BY '$quoted';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
  echo "MariaDB init process done. Ready for start up."
fi
unset MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD
[ "$(id -u)" = 0 ] && set -- "$@" --user=mysql
exec "$@"
"""

REDIS_ENTRYPOINT = r"""#!/bin/sh
# Berth's stand-in for the official redis image entrypoint: redis-server in /data as user redis.
set -eu
[ $# -eq 0 ] && set -- redis-server
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  mkdir -p /data
  find /data \! -user redis -exec chown redis:redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
"""

# Debian's MariaDB listens on 127.0.0.1 only and logs to a file; the official image does neither.
MARIADB_CONFIG = """[mariadbd]
bind-address = 0.0.0.0
skip-name-resolve
log-error =
"""

FILES = {
    "usr/local/bin/berth-postgres-entrypoint": (POSTGRES_ENTRYPOINT, 0o755),
    "usr/local/bin/berth-mariadb-entrypoint": (MARIADB_ENTRYPOINT, 0o755),
    "usr/local/bin/berth-redis-entrypoint": (REDIS_ENTRYPOINT, 0o755),
    "etc/mysql/mariadb.conf.d/99-berth.cnf": (MARIADB_CONFIG, 0o644),
}

BASE_CHANGES = [f"ENV PATH={PG_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8"]
SERVICE_CHANGES = {
    "postgresql": ['ENTRYPOINT ["/usr/local/bin/berth-postgres-entrypoint"]', 'CMD ["postgres"]',
                   "ENV PGDATA=/var/lib/postgresql/data", "EXPOSE 5432"],
    "mysql": ['ENTRYPOINT ["/usr/local/bin/berth-mariadb-entrypoint"]', 'CMD ["mariadbd"]', "EXPOSE 3306"],
    "redis": ['ENTRYPOINT ["/usr/local/bin/berth-redis-entrypoint"]', 'CMD ["redis-server"]',
              "WORKDIR /data", "EXPOSE 6379"],
}


def base_hash() -> str:
    """12 hex digits naming the root filesystem (the slow part: debootstrap)."""
    recipe = {"suite": SUITE, "packages": PACKAGES, "trim": TRIM, "base": BASE_CHANGES}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def recipe_hash() -> str:
    """12 hex digits naming the service images: the root filesystem plus the files and settings
    added on top (a change there re-derives the images in seconds, without a new debootstrap)."""
    recipe = {"base": base_hash(), "files": FILES, "services": SERVICE_CHANGES}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
