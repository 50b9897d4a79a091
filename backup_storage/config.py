"""The backup config (Cloudron's BackupConfig): validation, defaults, and secret masking.

validate_config is pure validation, except that host paths are looked at to follow symlinks
(host_paths) and S3 endpoint names are resolved (endpoints): nothing is created or contacted;
probe() is what tests a storage.
"""
import os
from urllib.parse import urlparse

from backup_storage import endpoints, host_paths
from backup_storage.base import DEFAULT_CONCURRENCY
from core import errors
from core.masking import MASK
from tasks import schedules

PROVIDERS = ("filesystem", "s3", "minio", "s3-v4-compat", "digitalocean-spaces", "exoscale-sos",
             "wasabi", "scaleway-objectstorage", "noop")
S3_PROVIDERS = PROVIDERS[1:-1]
FORMATS = ("tgz", "zstd", "rsync")
MIN_INTERVAL_SECS = 6 * 3600
DEFAULT_RETENTION_SECS = 7 * 24 * 3600
DEFAULT_INTERVAL_SECS = 24 * 3600
MAX_CONCURRENCY = 100
# What GET answers for a stored secret (core.masking.MASK); posting it back means "keep the stored one".
SECRET_FIELDS = ("key", "secretAccessKey")

# Providers whose endpoint follows from the region (the seed's defaults for each service).
_ENDPOINTS = {
    "digitalocean-spaces": ("https://{region}.digitaloceanspaces.com", "nyc3"),
    "exoscale-sos": ("https://sos-{region}.exo.io", "ch-gva-2"),
    "wasabi": ("https://s3.{region}.wasabisys.com", "us-east-1"),
    "scaleway-objectstorage": ("https://s3.{region}.scw.cloud", "fr-par"),
}
# Providers that are always a server of the user's choosing: they need an endpoint.
_ENDPOINT_REQUIRED = ("minio", "s3-v4-compat")


def _typed(cfg, field, kind, label):
    """cfg[field] if it is of `kind` (bool is not an int here), None if unset; else BadRequest."""
    value = cfg.get(field)
    if value is None:
        return None
    ok = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else isinstance(value, kind)
    if not ok:
        raise errors.BadRequest(f"must be {label}", field)
    return value


def _choice(cfg, field, choices, hint):
    value = _typed(cfg, field, str, "a string")
    if not value:
        raise errors.BadRequest("is required", field)
    if value not in choices:
        raise errors.BadRequest(f"{value!r} is not supported ({hint})", field)
    return value


def _schedule(cfg, out):
    interval = _typed(cfg, "intervalSecs", int, "a whole number of seconds")
    pattern = _typed(cfg, "schedulePattern", str, "a string")
    if interval is not None and interval < MIN_INTERVAL_SECS:
        raise errors.BadRequest(f"must be at least {MIN_INTERVAL_SECS} (6 hours)", "intervalSecs")
    if pattern is not None:
        fields = pattern.split()
        if len(fields) != 6:
            raise errors.BadRequest("must be a cron pattern with seconds (6 fields, e.g. '00 00 23 * * *')",
                                    "schedulePattern")
        try:
            out["schedulePattern"] = schedules.validate(" ".join(fields))
        except errors.BadRequest as e:
            raise errors.BadRequest(e.message.split(": ", 1)[-1], "schedulePattern") from None
    if interval is not None or pattern is None:
        out["intervalSecs"] = DEFAULT_INTERVAL_SECS if interval is None else interval


def _common(cfg, out):
    retention = _typed(cfg, "retentionSecs", int, "a whole number of seconds")
    if retention is None:
        raise errors.BadRequest("is required", "retentionSecs")
    out["retentionSecs"] = retention
    _schedule(cfg, out)
    concurrency = _typed(cfg, "syncConcurrency", int, "a whole number")
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise errors.BadRequest(f"must be between 1 and {MAX_CONCURRENCY}", "syncConcurrency")
    out["syncConcurrency"] = concurrency or DEFAULT_CONCURRENCY
    out["key"] = _typed(cfg, "key", str, "a string") or None


def _filesystem(cfg, out):
    folder = _typed(cfg, "backupFolder", str, "a string")
    if not folder:
        raise errors.BadRequest("is required for the filesystem provider", "backupFolder")
    out["backupFolder"] = host_paths.check_folder(folder, "backupFolder")
    out["noHardlinks"] = bool(_typed(cfg, "noHardlinks", bool, "true or false"))
    out["externalDisk"] = bool(_typed(cfg, "externalDisk", bool, "true or false"))


def _endpoint(cfg, provider, region):
    endpoint = (_typed(cfg, "endpoint", str, "a string") or "").strip()
    if not endpoint:
        if provider in _ENDPOINT_REQUIRED:
            raise errors.BadRequest(f"is required for the {provider} provider", "endpoint")
        default = _ENDPOINTS.get(provider)
        return default[0].format(region=region) if default else None
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    try:
        parsed = urlparse(endpoint)
        valid = parsed.scheme in ("http", "https") and bool(parsed.hostname) and parsed.port != 0
    except ValueError:      # a port that is not a number in 0-65535, a bad IPv6 literal
        valid = False
    if not valid:
        raise errors.BadRequest("must be an http:// or https:// URL", "endpoint")
    endpoint = endpoint.rstrip("/")
    endpoints.check_endpoint(endpoint, "endpoint")
    return endpoint


def _s3(cfg, out):
    provider = out["provider"]
    for field in ("bucket", "accessKeyId", "secretAccessKey"):
        value = _typed(cfg, field, str, "a string")
        if not value or not value.strip():
            raise errors.BadRequest(f"is required for the {provider} provider", field)
        out[field] = value.strip() if field != "secretAccessKey" else value
    if "/" in out["bucket"] or len(out["bucket"]) > 255:
        raise errors.BadRequest("must be a bucket name (no '/')", "bucket")
    prefix = "/".join(p for p in (_typed(cfg, "prefix", str, "a string") or "").split("/") if p)
    if any(p in (".", "..") for p in prefix.split("/")):
        raise errors.BadRequest("must not contain '.' or '..' segments", "prefix")
    out["prefix"] = prefix
    region = (_typed(cfg, "region", str, "a string") or "").strip()
    out["region"] = region or _ENDPOINTS.get(provider, (None, "us-east-1"))[1]
    out["endpoint"] = _endpoint(cfg, provider, out["region"])
    out["acceptSelfSignedCerts"] = bool(_typed(cfg, "acceptSelfSignedCerts", bool, "true or false"))
    signature = _typed(cfg, "signatureVersion", str, "a string")
    if signature is not None:
        if signature not in ("v2", "v4"):
            raise errors.BadRequest("must be v2 or v4", "signatureVersion")
        out["signatureVersion"] = signature


_PROVIDER_FIELDS = {"filesystem": _filesystem, "noop": lambda cfg, out: None,
                    **{p: _s3 for p in S3_PROVIDERS}}


def validate_config(cfg: object) -> dict:
    """Normalised copy of a BackupConfig; BadRequest naming the field for anything unusable.

    Fields that do not apply to the provider are dropped; unset optional fields get their
    defaults."""
    if not isinstance(cfg, dict):
        raise errors.BadRequest("backup config must be an object")
    out = {"provider": _choice(cfg, "provider", PROVIDERS, "one of " + ", ".join(PROVIDERS)),
           "format": _choice(cfg, "format", FORMATS, "tgz, zstd or rsync")}
    _common(cfg, out)
    _PROVIDER_FIELDS[out["provider"]](cfg, out)
    return out


def default_config(data_dir: str) -> dict:
    """A fresh instance's backup config: filesystem under the data dir, tgz, daily, 7 days kept."""
    return validate_config({"provider": "filesystem", "format": "tgz",
                            "backupFolder": os.path.join(os.path.abspath(data_dir), "backups"),
                            "retentionSecs": DEFAULT_RETENTION_SECS, "intervalSecs": DEFAULT_INTERVAL_SECS})


def masked(cfg: dict) -> dict:
    """Copy of `cfg` with each set secret replaced by MASK (for GET responses)."""
    out = dict(cfg)
    for field in SECRET_FIELDS:
        if out.get(field):
            out[field] = MASK
    return out


def unmask(new: dict, old: dict | None) -> dict:
    """Copy of `new` where a secret sent back as MASK takes the stored value from `old`."""
    out = dict(new)
    for field in SECRET_FIELDS:
        if out.get(field) == MASK:
            out[field] = (old or {}).get(field)
    return out
