"""The addon test app: an image that, at start, writes to its PostgreSQL, MySQL and Redis using only
the CLOUDRON_* variables Berth injects, and serves what it reads back over HTTP.

    tag = addon_app.image(client)     # berth-test/addon-app:<content hash>

It is built FROM the addon image Berth itself builds from Debian packages (addons.images, one
root filesystem with postgresql-15, mariadb-server and redis-server, hence psql, mariadb and
redis-cli), plus Debian's static busybox for `busybox httpd`. The addon image is made the way a
server makes it on first use: `addons.images.build_local` run in a child process with a scratch
data dir (a minute or two once; cached by the recipe's hash like on a server).

What the container does (PORT 8000, health at /health):
- at start, in each store that has no value yet, writes `$INITIAL_VALUE` ("first"): a row of table
  kv in PostgreSQL and MySQL, key kv in Redis, file /app/data/value (localstorage); retries while
  the services come up; /health exists only once all four were written;
- /cgi-bin/state answers `postgresql=<v>`, `mysql=<v>`, `redis=<v>`, `localstorage=<v>` lines;
- /cgi-bin/set?<word> replaces the value in all four (a letters-and-digits word);
- exits on SIGTERM at once.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

from support import images
from support.harness import machine_lock

REPOSITORY = "berth-test/addon-app"
PORT = 8000
HEALTH_PATH = "/health"
INITIAL_VALUE = "first"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COMMON_SH = r"""
pg() { psql "$CLOUDRON_POSTGRESQL_URL" -v ON_ERROR_STOP=1 -tAq "$@"; }
my() { MYSQL_PWD="$CLOUDRON_MYSQL_PASSWORD" mariadb -h "$CLOUDRON_MYSQL_HOST" -P "$CLOUDRON_MYSQL_PORT" \
         -u "$CLOUDRON_MYSQL_USERNAME" -N -B "$CLOUDRON_MYSQL_DATABASE" "$@"; }
rd() { REDISCLI_AUTH="$CLOUDRON_REDIS_PASSWORD" redis-cli --no-auth-warning -h "$CLOUDRON_REDIS_HOST" \
         -p "$CLOUDRON_REDIS_PORT" "$@"; }
"""

START_SH = r"""#!/bin/sh
trap 'kill $httpd 2>/dev/null; echo "addon-app: stopping"; exit 0' TERM INT
. /common.sh
echo "addon-app: starting"
v="${INITIAL_VALUE:-first}"
i=0
absent="WHERE NOT EXISTS (SELECT 1 FROM kv)"
until pg -c "CREATE TABLE IF NOT EXISTS kv (v text); INSERT INTO kv SELECT '$v' $absent" \
   && my -e "CREATE TABLE IF NOT EXISTS kv (v text); INSERT INTO kv SELECT '$v' FROM DUAL $absent" \
   && case "$(rd SETNX kv "$v")" in 0|1) true ;; *) false ;; esac; do
  i=$((i + 1))
  [ $i -lt 60 ] || { echo "addon-app: the databases never answered"; exit 1; }
  echo "addon-app: waiting for the databases"
  sleep 1
done
[ -f /app/data/value ] || echo "$v" > /app/data/value
echo "addon-app: wrote the initial values"
rm -f /www/health
busybox httpd -f -v -p "${PORT:-8000}" -h /www &
httpd=$!
echo ok > /www/health
wait $httpd
"""

STATE_CGI = r"""#!/bin/sh
. /common.sh
echo "Content-Type: text/plain"
echo
echo "postgresql=$(pg -c 'SELECT v FROM kv LIMIT 1' 2>&1)"
echo "mysql=$(my -e 'SELECT v FROM kv LIMIT 1' 2>&1)"
echo "redis=$(rd GET kv 2>&1)"
echo "localstorage=$(cat /app/data/value 2>&1)"
"""

SET_CGI = r"""#!/bin/sh
. /common.sh
echo "Content-Type: text/plain"
echo
case "$QUERY_STRING" in ''|*[!A-Za-z0-9]*) echo "bad value"; exit 0 ;; esac
v="$QUERY_STRING"
pg -c "UPDATE kv SET v = '$v'" && my -e "UPDATE kv SET v = '$v'" && rd SET kv "$v" >/dev/null \
  && echo "$v" > /app/data/value && echo "set $v"
"""

DOCKERFILE = """FROM {base}
COPY rootfs/ /
ENV PORT={port} INITIAL_VALUE={initial}
EXPOSE {port}
LABEL {label}=true
ENTRYPOINT ["/bin/sh", "/start.sh"]
CMD []
"""


def addon_base_image():
    """The tag of Berth's locally built PostgreSQL addon image, building it (as a server would on
    first use) when the engine does not have it."""
    # One build at a time on the machine: each scratch data dir has its own build lock, so two
    # pytest-xdist workers would otherwise both debootstrap the same image.
    with machine_lock("berth-addon-image"), tempfile.TemporaryDirectory(prefix="berth-addon-image-") as data_dir:
        code = ("import sys\nfrom addons import images\n"
                "print(images.build_local('postgresql', lambda line: print(line, file=sys.stderr)))\n")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "BERTH_DATA_DIR": data_dir}, timeout=1800)
    assert out.returncode == 0, f"building the addon image failed: {out.stderr[-3000:]}"
    return out.stdout.strip().splitlines()[-1]


def image(client=None):
    """Tag of the addon test app image, built unless the engine has it."""
    import docker
    client = client or docker.from_env()
    base = addon_base_image()
    with open(images.BUSYBOX, "rb") as f:
        busybox = f.read()
    files = {
        "Dockerfile": DOCKERFILE.format(base=base, port=PORT, initial=INITIAL_VALUE, label=images.LABEL).encode(),
        "rootfs/usr/local/bin/busybox": busybox,
        "rootfs/start.sh": START_SH.encode(),
        "rootfs/common.sh": COMMON_SH.encode(),
        "rootfs/www/index.html": b"addon-app\n",
        "rootfs/www/cgi-bin/state": STATE_CGI.encode(),
        "rootfs/www/cgi-bin/set": SET_CGI.encode(),
        "rootfs/app/data/.keep": b"",
    }
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    tag = f"{REPOSITORY}:{digest.hexdigest()[:16]}"
    with machine_lock(tag), tempfile.TemporaryDirectory(prefix="berth-addon-app-") as ctx:
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        for path, data in files.items():
            full = os.path.join(ctx, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
            os.chmod(full, 0o755 if "/bin/" in path or "cgi-bin" in path or path.endswith(".sh") else 0o644)
        client.images.build(path=ctx, tag=tag, rm=True, forcerm=True, pull=False)
    return tag


if __name__ == "__main__":
    print(image())
