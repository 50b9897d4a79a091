"""backup_storage configuration: validation of a BackupConfig, secret masking, which host folders
may hold backups and where S3 endpoints may point. Offline: nothing is contacted (names that
resolve come from /etc/hosts)."""
import os
import socket

import pytest

import backup_storage as bs
from backup_storage import endpoints, host_paths, registry
from core import errors


def refused_field(cfg):
    with pytest.raises(errors.BadRequest) as e:
        bs.validate_config(cfg)
    assert e.value.status == 400 and e.value.message.startswith(f"{e.value.field}: ")
    return e.value.field


def fs(folder, **extra):
    return {"provider": "filesystem", "format": "tgz", "retentionSecs": 60, "backupFolder": folder, **extra}


def minio(endpoint, **extra):
    return {"provider": "minio", "format": "tgz", "retentionSecs": 60, "bucket": "b1", "accessKeyId": "a",
            "secretAccessKey": "s", "endpoint": endpoint, **extra}


# ---- validation ---------------------------------------------------------------------------------

def test_validate_config_normalises_and_defaults():
    cfg = bs.validate_config({"provider": "filesystem", "format": "rsync", "retentionSecs": 3600,
                              "backupFolder": "/var/backups/./daily//", "bucket": "ignored", "key": ""})
    assert cfg == {"provider": "filesystem", "format": "rsync", "retentionSecs": 3600, "intervalSecs": 86400,
                   "syncConcurrency": bs.DEFAULT_CONCURRENCY, "key": None, "backupFolder": "/var/backups/daily",
                   "noHardlinks": False, "externalDisk": False}
    s3 = bs.validate_config({"provider": "wasabi", "format": "tgz", "retentionSecs": -1, "bucket": "b1",
                             "prefix": "/a//b/", "accessKeyId": "AK", "secretAccessKey": "SK",
                             "region": "eu-central-1",
                             "schedulePattern": "00  00 23 * * *", "key": "secret"})
    assert s3["endpoint"] == "https://s3.eu-central-1.wasabisys.com" and s3["prefix"] == "a/b"
    assert s3["schedulePattern"] == "00 00 23 * * *" and "intervalSecs" not in s3
    assert s3["acceptSelfSignedCerts"] is False and s3["key"] == "secret"
    assert bs.validate_config({"provider": "noop", "format": "tgz", "retentionSecs": 1})["provider"] == "noop"
    default = bs.default_config("/srv/berth")
    assert default["backupFolder"] == "/srv/berth/backups" and default["format"] == "tgz"
    assert default["intervalSecs"] == 86400 and default["retentionSecs"] == 7 * 86400


@pytest.mark.parametrize("change, field", [
    ({"provider": "gcs"}, "provider"),
    ({"provider": None}, "provider"),
    ({"format": "zip"}, "format"),
    ({"retentionSecs": "7d"}, "retentionSecs"),
    ({"retentionSecs": None}, "retentionSecs"),
    ({"intervalSecs": 3600}, "intervalSecs"),
    ({"intervalSecs": True}, "intervalSecs"),
    ({"schedulePattern": "* * * * *"}, "schedulePattern"),       # seconds are required here
    ({"schedulePattern": "61 * * * * *"}, "schedulePattern"),    # fields checked by tasks.schedules
    ({"schedulePattern": "0 0 25 * * *"}, "schedulePattern"),
    ({"schedulePattern": "never"}, "schedulePattern"),
    ({"syncConcurrency": 0}, "syncConcurrency"),
    ({"syncConcurrency": 101}, "syncConcurrency"),
    ({"backupFolder": "relative/path"}, "backupFolder"),
    ({"backupFolder": None}, "backupFolder"),
    ({"noHardlinks": "yes"}, "noHardlinks"),
    ({"provider": "minio", "bucket": "b1", "accessKeyId": "a", "secretAccessKey": "s"}, "endpoint"),
    ({"provider": "s3", "accessKeyId": "a", "secretAccessKey": "s"}, "bucket"),
    ({"provider": "s3", "bucket": "b1", "secretAccessKey": "s"}, "accessKeyId"),
    ({"provider": "s3", "bucket": "a/b", "accessKeyId": "a", "secretAccessKey": "s"}, "bucket"),
    ({"provider": "s3", "bucket": "b", "accessKeyId": "a", "secretAccessKey": "s", "prefix": "x/../y"}, "prefix"),
    ({"provider": "minio", "bucket": "b1", "accessKeyId": "a", "secretAccessKey": "s",
      "endpoint": "ftp://x"}, "endpoint"),
    ({"provider": "minio", "bucket": "b1", "accessKeyId": "a", "secretAccessKey": "s",
      "endpoint": "http://s3.example.com:99999"}, "endpoint"),
    ({"provider": "s3", "bucket": "b1", "accessKeyId": "a", "secretAccessKey": "s",
      "signatureVersion": "v3"}, "signatureVersion"),
    ({"key": 5}, "key"),
])
def test_validate_config_names_the_bad_field(change, field):
    cfg = {k: v for k, v in {**fs("/b"), **change}.items() if v is not None}
    assert refused_field(cfg) == field


def test_not_an_object_is_refused():
    with pytest.raises(errors.BadRequest, match="must be an object"):
        bs.validate_config(["provider", "filesystem"])


def test_secrets_are_masked_and_kept():
    stored = {"provider": "s3", "key": "pw", "secretAccessKey": "SK", "accessKeyId": "AK"}
    shown = bs.masked(stored)
    assert shown["key"] == bs.MASK and shown["secretAccessKey"] == bs.MASK and shown["accessKeyId"] == "AK"
    assert bs.unmask(shown, stored) == stored
    assert bs.unmask({**shown, "key": "new"}, stored)["key"] == "new"
    assert bs.unmask(shown, None)["key"] is None


def test_every_provider_opens_a_complete_storage_class():
    assert set(registry.CLASSES) == set(bs.PROVIDERS)
    for cls in set(registry.CLASSES.values()):
        assert issubclass(cls, bs.Storage) and not cls.__abstractmethods__, cls
    with pytest.raises(errors.BadRequest, match="provider"):
        bs.open_storage({"provider": "gcs"})


# ---- host folders (security finding 5) ----------------------------------------------------------

@pytest.mark.parametrize("folder", [
    "/var/backups/../../etc", "/srv/backups/..", "/mnt/../root/x", "backups", "./backups", "~/backups",
    "/", "//", "/etc", "/etc/berth", "/bin", "/boot/x", "/dev/shm/b", "/lib", "/lib64/x", "/libx32",
    "/proc/self/cwd", "/root", "/root/backups", "/run/b", "/sbin", "/sys/fs", "/usr", "/usr/local/backups",
    "/var", "/var/", "/var/lib/docker/b", "/var/log/b", "/var/run/b", "/home", "/mnt", "/tmp", "/srv",
    "/tmp/\0x",
])
def test_backup_folder_with_dotdot_or_system_path_refused(folder, settings, tmp_path):
    settings(data_dir=str(tmp_path / "data"))
    assert refused_field(fs(folder)) == "backupFolder"


def test_backup_folder_in_the_data_dir_refused_but_its_backups_folder_allowed(settings, tmp_path):
    data = tmp_path / "data"
    settings(data_dir=str(data))
    for folder in (data, data / "apps", data / "apps/x/data", data / "certs"):
        assert refused_field(fs(str(folder))) == "backupFolder"
    for folder in (data / "backups", data / "backups/more", tmp_path / "elsewhere"):
        assert bs.validate_config(fs(str(folder)))["backupFolder"] == str(folder)


def test_backup_folder_symlinked_into_a_system_folder_refused(settings, tmp_path):
    settings(data_dir=str(tmp_path / "data"))
    os.symlink("/etc", tmp_path / "etc-link")
    os.symlink(tmp_path / "data", tmp_path / "data-link")
    for folder in ("etc-link", "etc-link/sub", "data-link/apps"):
        assert refused_field(fs(str(tmp_path / folder))) == "backupFolder"
    for folder in ("/var/backups", "/mnt/disk/backups", "/home/backups", "/srv/berth-backups", "/tmp/b"):
        assert bs.validate_config(fs(folder))["backupFolder"] == folder


def test_host_path_rules_checked_without_touching_the_filesystem(tmp_path):
    assert host_paths.refusal("/var/backups") is None
    assert host_paths.refusal("/libfoo") is not None and host_paths.refusal("/var/lib") is not None
    assert host_paths.refusal("/variable") is None and host_paths.refusal("/etcetera") is None
    before = sorted(os.listdir(tmp_path))
    host_paths.check_folder(str(tmp_path / "not" / "there"), "backupFolder")
    assert sorted(os.listdir(tmp_path)) == before


# ---- S3 endpoints (security finding 5) ----------------------------------------------------------

LOCAL_ENDPOINTS = [
    "http://127.0.0.1:9000", "127.0.0.1", "https://127.1.2.3", "http://localhost:9000", "http://LocalHost.",
    "http://minio.localhost", "http://[::1]:9000", "http://[::ffff:127.0.0.1]", "http://169.254.169.254",
    "http://[fe80::1]", "http://10.1.2.3", "http://172.16.0.9", "http://192.168.1.10", "http://[fd00:ec2::254]",
    "http://100.100.100.200", "http://0.0.0.0", "http://2130706433", "http://0x7f000001", "http://224.0.0.1",
    "http://[2002:7f00:1::1]",
]


@pytest.mark.parametrize("endpoint", LOCAL_ENDPOINTS)
def test_s3_endpoint_on_loopback_refused_without_opt_in(endpoint, settings):
    settings(allow_local_storage_endpoints=False)
    with pytest.raises(errors.BadRequest) as e:
        bs.validate_config(minio(endpoint))
    assert e.value.field == "endpoint" and e.value.status == 400
    # Opening a stored config holds it to the same rule (it is validated again).
    with pytest.raises(errors.BadRequest, match="^endpoint: "):
        bs.open_storage({**minio("http://8.8.8.8"), "endpoint": endpoint})
    settings(allow_local_storage_endpoints=True)
    assert bs.validate_config(minio(endpoint))["endpoint"]


def test_s3_endpoint_name_resolving_to_loopback_refused(settings):
    name = socket.gethostname()
    try:
        addresses = endpoints.resolve(name, None)
    except socket.gaierror:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if all(endpoints.address_allowed(a) for a in addresses):
        pytest.skip(f"this machine's name {name!r} resolves to public addresses only")
    settings(allow_local_storage_endpoints=False)
    assert refused_field(minio(f"http://{name}:9000")) == "endpoint"


def test_public_s3_endpoints_accepted(settings):
    settings(allow_local_storage_endpoints=False)
    for endpoint in ("http://8.8.8.8:9000", "https://[2001:4860:4860::8888]", "https://203.0.114.1"):
        assert bs.validate_config(minio(endpoint))["endpoint"] == endpoint
    # Provider defaults are public names; one that does not resolve (no DNS here) is left to the
    # connection, which checks the addresses it resolves then.
    cfg = bs.validate_config({**minio(""), "provider": "wasabi", "endpoint": None})
    assert cfg["endpoint"] == "https://s3.us-east-1.wasabisys.com"
