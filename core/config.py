"""Berth configuration, read once from the environment.

Every setting has a default that works for `make run` on one machine; a bad value stops
start-up with one line naming the variable (ConfigError), never a traceback.
"""
import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlparse


class ConfigError(Exception):
    """A configuration value is unusable; the message is the one line shown to the user."""


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: str
    host: str
    port: int
    database_url: str
    proxy_http_port: int
    proxy_https_port: int
    proxy_listen: str        # address the managed nginx binds ("" = every interface)
    docker_host: str
    rate_limit: int          # API requests per minute per token (0 = unlimited)
    token_ttl_secs: int      # lifetime of login/activation session tokens
    wsgi_threads: int        # threads running Flask handlers in each worker
    workers: int = 1         # gunicorn worker processes (`berth serve`)
    app_catalog: str = ""    # JSON file of the app catalog (appStoreId -> manifest)
    test_task_bodies: str = ""  # module whose functions are the `test.*` task bodies (tests only)
    allow_local_storage_endpoints: bool = False  # backup storage on loopback/private addresses (tests)
    max_body_bytes: int = 4 * 1024 * 1024  # largest request body (upload routes may declare more)
    trusted_proxies: tuple = ()  # addresses/networks whose X-Forwarded-For is believed (none)
    acme_directory: str = ""     # ACME directory URL for every letsencrypt-* domain ("" = Let's Encrypt's)
    acme_ca_bundle: str = ""     # CA bundle trusted for the ACME directory's HTTPS (a private CA)
    public_ip: str = ""      # this server's public address for app DNS records ("" = unknown: no writes)
    ip_lookup_url: str = "https://api.ipify.org"  # answers the caller's public IP as text (sysinfo `generic`)
    dynamic_dns_pattern: str = "0 */5 * * * *"    # when dynamic DNS re-checks the public address
    # Addon services (addons/): images of the shared database servers and the per-app Redis.
    # When the image cannot be pulled, Berth builds an equivalent from Debian packages.
    postgresql_image: str = "postgres:15"
    mysql_image: str = "mariadb:10.11"
    redis_image: str = "redis:7"
    debian_mirror: str = "http://deb.debian.org/debian"  # for the local image builds (debootstrap)
    # The mail server (mail_server/): its ports, and the DNS server mail status checks ask.
    mail_smtp_port: int = 25
    mail_submission_port: int = 587
    mail_imap_port: int = 143
    mail_imaps_port: int = 993
    mail_resolver: str = ""  # "address" or "address:port" ("" = the system's resolver)
    metrics_token: str = ""  # bearer secret a Prometheus scraper may use for /metrics ("" = none)
    # Updates of Berth itself (platform_update/) and the reboot routes.
    release_feed: str = ""   # http(s) URL of the JSON release feed ("" = no update checks)
    allow_reboot: bool = False  # POST /cloudron/reboot really reboots the machine (else 409)
    reboot_required_file: str = "/var/run/reboot-required"  # the OS's "reboot needed" marker
    support_email: str = ""  # where support tickets are mailed ("" = ticket form off)
    graphs_interval: int = 60  # seconds between two samples of the resource graphs (system_monitor)
    keep_builds: int = 3     # newest built images kept per app by the image hygiene (deployments.hygiene)
    # Builds and deploys (deployments/): time limits and the largest source tarball.
    deploy_build_timeout: int = 1800      # seconds a `docker build` may take
    deploy_health_timeout: int = 120      # seconds a new version has to answer its health check
    deploy_upload_max_bytes: int = 512 * 1024 * 1024  # an uploaded source tarball (packed)
    version: str = "1.0.0"


def _port(env, name, default):
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise ConfigError(f"{name}={raw!r} must be between 1 and 65535")
    return value


def _int(env, name, default, minimum=0):
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _flag(env, name):
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} must be 1 or 0")


def _networks(env, name):
    """Comma-separated addresses or networks (`10.0.0.1,10.1.0.0/16`; `*` = any)."""
    values = tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())
    for value in values:
        if value != "*":
            try:
                ipaddress.ip_network(value)
            except ValueError:
                raise ConfigError(f"{name}: {value!r} is not an IP address or network") from None
    return values


def _ip(env, name):
    raw = env.get(name, "").strip()
    if raw:
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an IP address") from None
    return raw


def _database_url(env, data_dir):
    url = env.get("BERTH_DATABASE_URL", "").strip()
    if not url:
        return "sqlite:///" + os.path.join(data_dir, "berth.db")
    scheme = urlparse(url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(f"BERTH_DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:/// or postgresql://)")
    return url


def _acme_directory(env):
    url = env.get("BERTH_ACME_DIRECTORY", "").strip()
    if url and (urlparse(url).scheme not in ("https", "http") or not urlparse(url).netloc):
        raise ConfigError(f"BERTH_ACME_DIRECTORY={url!r} is not an http(s) URL")
    return url


def _http_url(env, name, default):
    url = env.get(name, "").strip() or default
    if urlparse(url).scheme not in ("https", "http") or not urlparse(url).netloc:
        raise ConfigError(f"{name}={url!r} is not an http(s) URL")
    return url


def _optional_http_url(env, name):
    return _http_url(env, name, "") if env.get(name, "").strip() else ""


def _existing_file(env, name):
    path = env.get(name, "").strip()
    if path and not os.path.isfile(path):
        raise ConfigError(f"{name}={path!r} is not a file")
    return path


def _email(env, name):
    raw = env.get(name, "").strip()
    if raw and (raw.count("@") != 1 or any(ch.isspace() or ch in "<>,;" for ch in raw)):
        raise ConfigError(f"{name}={raw!r} is not an email address")
    return raw


def _image(env, name, default):
    ref = env.get(name, "").strip() or default
    if " " in ref or ref.startswith("-"):
        raise ConfigError(f"{name}={ref!r} is not an image reference like 'name:tag'")
    return ref


def _resolver(env, name):
    """"" or "address[:port]" of a DNS server (an IPv6 address with a port: "[addr]:port")."""
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    host, port = raw, "53"
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    try:
        ipaddress.ip_address(host)
        if not 1 <= int(port) <= 65535:
            raise ValueError(port)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be an IP address, optionally with :port") from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _secret(env, name, minimum):
    raw = env.get(name, "").strip()
    if raw and len(raw) < minimum:
        raise ConfigError(f"{name} must be at least {minimum} characters (a random secret)")
    return raw


def _graphs_interval(env, name):
    # The collector runs as a cron-like schedule (tasks.schedules), so the interval must tile a
    # minute (1..60 s dividing 60) or an hour (whole minutes dividing 60).
    value = _int(env, name, 60, minimum=1)
    if not (60 % value == 0 or (value % 60 == 0 and 60 % (value // 60) == 0)):
        raise ConfigError(f"{name}={value} must divide 60 seconds or be whole minutes dividing an hour")
    return value


def load(env: Mapping[str, str] | None = None) -> Config:
    """Build the Config from `env` (default os.environ) or raise ConfigError."""
    env = os.environ if env is None else env
    data_dir = os.path.abspath(env.get("BERTH_DATA_DIR", "./data"))
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ConfigError(f"BERTH_DATA_DIR={data_dir!r} exists and is not a directory")
    host = env.get("BERTH_HOST", "127.0.0.1").strip()
    if not host:
        raise ConfigError("BERTH_HOST must not be empty")
    return Config(
        data_dir=data_dir,
        host=host,
        port=_port(env, "BERTH_PORT", 3000),
        database_url=_database_url(env, data_dir),
        proxy_http_port=_port(env, "BERTH_PROXY_HTTP_PORT", 80),
        proxy_https_port=_port(env, "BERTH_PROXY_HTTPS_PORT", 443),
        proxy_listen=env.get("BERTH_PROXY_LISTEN", "").strip(),
        docker_host=env.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        rate_limit=_int(env, "BERTH_RATE_LIMIT", 1200),
        token_ttl_secs=_int(env, "BERTH_TOKEN_TTL", 7 * 24 * 3600, minimum=60),
        wsgi_threads=_int(env, "BERTH_WSGI_THREADS", 2, minimum=1),
        workers=_int(env, "BERTH_WORKERS", 1, minimum=1),
        app_catalog=env.get("BERTH_APP_CATALOG", "").strip(),
        test_task_bodies=env.get("BERTH_TEST_TASK_BODIES", "").strip(),
        allow_local_storage_endpoints=_flag(env, "BERTH_ALLOW_LOCAL_STORAGE_ENDPOINTS"),
        max_body_bytes=_int(env, "BERTH_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024),
        trusted_proxies=_networks(env, "BERTH_TRUSTED_PROXIES"),
        public_ip=_ip(env, "BERTH_PUBLIC_IP"),
        acme_directory=_acme_directory(env),
        acme_ca_bundle=_existing_file(env, "BERTH_ACME_CA_BUNDLE"),
        ip_lookup_url=_http_url(env, "BERTH_IP_LOOKUP_URL", "https://api.ipify.org"),
        dynamic_dns_pattern=env.get("BERTH_DYNAMIC_DNS_PATTERN", "").strip() or "0 */5 * * * *",
        postgresql_image=_image(env, "BERTH_POSTGRESQL_IMAGE", "postgres:15"),
        mysql_image=_image(env, "BERTH_MYSQL_IMAGE", "mariadb:10.11"),
        redis_image=_image(env, "BERTH_REDIS_IMAGE", "redis:7"),
        debian_mirror=_http_url(env, "BERTH_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
        mail_smtp_port=_port(env, "BERTH_MAIL_SMTP_PORT", 25),
        mail_submission_port=_port(env, "BERTH_MAIL_SUBMISSION_PORT", 587),
        mail_imap_port=_port(env, "BERTH_MAIL_IMAP_PORT", 143),
        mail_imaps_port=_port(env, "BERTH_MAIL_IMAPS_PORT", 993),
        mail_resolver=_resolver(env, "BERTH_MAIL_RESOLVER"),
        graphs_interval=_graphs_interval(env, "BERTH_GRAPHS_INTERVAL"),
        keep_builds=_int(env, "BERTH_KEEP_BUILDS", 3),
        deploy_build_timeout=_int(env, "BERTH_DEPLOY_BUILD_TIMEOUT", 1800, minimum=10),
        deploy_health_timeout=_int(env, "BERTH_DEPLOY_HEALTH_TIMEOUT", 120, minimum=2),
        deploy_upload_max_bytes=_int(env, "BERTH_DEPLOY_UPLOAD_MAX_BYTES", 512 * 1024 * 1024, minimum=1024),
        metrics_token=_secret(env, "BERTH_METRICS_TOKEN", minimum=24),
        release_feed=_optional_http_url(env, "BERTH_RELEASE_FEED"),
        allow_reboot=_flag(env, "BERTH_ALLOW_REBOOT"),
        reboot_required_file=env.get("BERTH_REBOOT_REQUIRED_FILE", "").strip() or "/var/run/reboot-required",
        support_email=_email(env, "BERTH_SUPPORT_EMAIL"),
    )


_current = None


def get() -> Config:
    """The process-wide Config (loaded from the environment on first use)."""
    global _current
    if _current is None:
        _current = load()
    return _current


def use(cfg: Config) -> None:
    """Make `cfg` the process-wide Config (server start-up and tests)."""
    global _current
    _current = cfg
