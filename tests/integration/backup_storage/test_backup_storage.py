"""What only one backup storage provider does, against real storage: folders on this machine
(including full and read-only tmpfs mounts made by the test), a real local S3-compatible server
(tests/support/s3server.py) and small local HTTP servers playing a hostile "S3 endpoint".
The object API shared by every provider is checked in test_storage_contract.py."""
import http.server
import os
import stat
import threading

import pytest

import backup_storage as bs
from core import errors
from support.harness import free_port, require, tmpfs
from support.s3server import S3Server

# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def bucket(s3, request):
    name = "b" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    return s3.make_bucket(name.rstrip("-"))




def fs_config(folder, **extra):
    return {"provider": "filesystem", "format": "tgz", "retentionSecs": 1, "backupFolder": str(folder), **extra}


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


class HttpServer:
    """A local HTTP server answering every request with answer(handler) -> (status, headers,
    body); it records (method, path) of what it received."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.command, self.path))
                status, headers, body = answer(self)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_servers():
    started = []

    def start(answer):
        started.append(HttpServer(answer))
        return started[-1]
    yield start
    for server in started:
        server.close()


def s3_on(url, **extra):
    return bs.open_storage(bs.validate_config({"provider": "minio", "format": "tgz", "retentionSecs": 1,
                                               "endpoint": url, "bucket": "b", "accessKeyId": "a",
                                               "secretAccessKey": "s", **extra}))


# ---- filesystem --------------------------------------------------------------------------------

def test_filesystem_copy_is_a_hard_link_unless_no_hardlinks(tmp_path):
    for no_hardlinks in (False, True):
        root = tmp_path / str(no_hardlinks)
        root.mkdir()
        st = bs.open_storage(bs.validate_config(fs_config(root, noHardlinks=no_hardlinks)))
        assert st.cheap_copy is not no_hardlinks
        st.put_bytes("x", b"data")
        st.copy("x", "y/x")
        assert st.local_path("y/x") == os.path.join(root, "y/x")
        same = os.stat(st.local_path("y/x")).st_ino == os.stat(st.local_path("x")).st_ino
        assert same is not no_hardlinks and st.get_bytes("y/x") == b"data"
        assert stat.S_IMODE(os.stat(st.local_path("x")).st_mode) == 0o600    # backups hold secrets


def test_filesystem_writes_large_pieces_whole_in_one_mib_writes(tmp_path, monkeypatch):
    """A write of several MiB (a burst of zstd output, a 4 MiB chunk) reaches the file whole, handed
    to the kernel in pieces of at most WRITE_PIECE (large single writes cost seconds of kernel time)."""
    from backup_storage import filesystem
    st = bs.open_storage(bs.validate_config(fs_config(tmp_path)))
    big = os.urandom(3 * filesystem.WRITE_PIECE + 12345)
    sizes = []
    write = os.write
    monkeypatch.setattr(filesystem.os, "write", lambda fd, data: (sizes.append(len(data)), write(fd, data))[1])

    class Recorded:     # the writer's file, its writes counted
        def __init__(self, f):
            self.f = f

        def write(self, data):
            sizes.append(len(data))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)
    monkeypatch.setattr(filesystem, "open", lambda *a, **k: Recorded(open(*a, **k)), raising=False)
    with st.writer("stream") as out:
        assert out.write(big) == len(big)
        assert out.write(b"tail") == 4
    assert st.create("objects/big", big)
    with open(st.local_path("stream"), "rb") as f:
        assert f.read() == big + b"tail"
    with open(st.local_path("objects/big"), "rb") as f:
        assert f.read() == big
    assert len(sizes) >= 8 and max(sizes) <= filesystem.WRITE_PIECE


def test_filesystem_errors_carry_the_os_message(tmp_path):
    st = bs.FilesystemStorage(str(tmp_path))
    with pytest.raises(bs.StorageError, match="No such file or directory") as e:
        st.get_bytes("missing")
    assert e.value.status == 424
    with tmpfs("size=1m,ro") as ro:
        with pytest.raises(bs.StorageError, match="Read-only file system") as e:
            bs.FilesystemStorage(ro).probe()
        assert e.value.status == 424


def test_external_disk_must_be_mounted(tmp_path):
    # An unmounted disk leaves its empty mount point on the root filesystem.
    (tmp_path / "ext").mkdir()
    with pytest.raises(bs.StorageError, match="not on a mounted external disk"):
        bs.FilesystemStorage(str(tmp_path / "ext"), external_disk=True).probe()
    with tmpfs("size=1m") as disk:
        bs.FilesystemStorage(disk, external_disk=True).probe()
        assert files_under(disk) == []


def test_full_disk_fails_with_enospc_and_leaves_nothing():
    with tmpfs("size=2m") as disk:
        st = bs.FilesystemStorage(disk)
        st.put_bytes("small", b"ok")
        with pytest.raises(bs.StorageError, match="No space left on device") as e:
            with st.writer("big/object") as w:
                for _ in range(4):
                    w.write(os.urandom(1 << 20))
        assert e.value.status == 424
        assert files_under(disk) == ["small"] and st.list("") == ["small"]


def test_probe_never_creates_missing_folder(tmp_path):
    """Security finding 5: probing a config (before activation: anyone, through POST
    /cloudron/restore) ran `mkdir -p` as root on any path."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for folder in (tmp_path / "a" / "b" / "c", tmp_path / "missing", afile / "backups", afile):
        st = bs.open_storage(bs.validate_config(fs_config(folder)))
        with pytest.raises(bs.StorageError) as e:
            st.probe()
        # One answer for "missing", "under a file" and "a file": nothing more about the path.
        assert e.value.message == f"{folder} does not exist; create it first" and e.value.status == 424
    assert sorted(os.listdir(tmp_path)) == ["afile"] and afile.read_text() == "x"


def test_probe_creates_only_the_default_backups_folder(settings, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    settings(data_dir=str(data))
    bs.open_storage(bs.default_config(str(data))).probe()
    assert stat.S_IMODE(os.stat(data / "backups").st_mode) == 0o700 and os.listdir(data / "backups") == []


def test_probe_of_a_folder_swapped_for_a_system_symlink_refused(tmp_path):
    """Validated as a plain folder, then replaced by a symlink into a system folder: the probe
    checks the folder it actually opened and writes nothing there."""
    folder = tmp_path / "backups"
    folder.mkdir()
    st = bs.open_storage(bs.validate_config(fs_config(folder)))
    folder.rmdir()
    os.symlink("/run", folder)
    before = set(os.listdir("/run"))
    with pytest.raises(errors.BadRequest) as e:
        st.probe()
    assert e.value.field == "backupFolder" and e.value.status == 400
    assert set(os.listdir("/run")) == before


# ---- S3 ----------------------------------------------------------------------------------------

def test_s3_probe_fails_with_the_code_and_status(s3, bucket):
    def probe(**change):
        with pytest.raises(bs.StorageError) as e:
            bs.open_storage(bs.validate_config({**s3.config(bucket), **change})).probe()
        return str(e.value)

    assert probe(bucket="no-such-bucket").endswith(": NoSuchBucket (HTTP 404)")
    assert probe(accessKeyId="AKIAWRONGWRONGWRONG").endswith(": InvalidAccessKeyId (HTTP 403)")
    assert probe(secretAccessKey="wrong-secret").endswith(": SignatureDoesNotMatch (HTTP 403)")
    closed = free_port()   # nothing listens there
    assert "Could not connect" in probe(endpoint=f"http://127.0.0.1:{closed}")
    st = bs.open_storage(bs.validate_config(s3.config(bucket)))
    st.probe()
    assert st.local_path("x") is None


def test_s3_self_signed_certificate_needs_accept_self_signed_certs():
    require("a local S3 server (pip packages moto[server] and boto3)", S3Server.available())
    server = S3Server(ssl=True).start()
    try:
        name = server.make_bucket("tls-bucket")
        with pytest.raises(bs.StorageError, match="certificate verify failed"):
            bs.open_storage(bs.validate_config(server.config(name))).probe()
        bs.open_storage(bs.validate_config(server.config(name, acceptSelfSignedCerts=True))).probe()
    finally:
        server.stop()


def test_every_s3_family_provider_talks_to_a_custom_endpoint(s3, bucket):
    for provider in bs.S3_PROVIDERS:
        st = bs.open_storage(bs.validate_config(s3.config(bucket, provider=provider, prefix=provider)))
        st.probe()
        st.put_bytes("x", provider.encode())
        assert st.get_bytes("x") == provider.encode()


def test_remote_error_body_not_reflected(http_servers):
    """Security finding 5: the 424 of a probe carried the endpoint's <Message> (and any <Code>),
    so any HTTP service could be read through the API."""
    bodies = {
        500: b"<?xml version='1.0'?><Error><Code>secret-code value</Code><Message>secret-banner</Message>"
             b"<Resource>secret-resource</Resource></Error>",
        403: b"<Error><Code>AccessDenied</Code><Message>secret-banner</Message></Error>",
        502: b"secret-banner: a plain text page, not S3 at all",
        200: b"<html>secret-banner</html>",   # a non-S3 service answering GET/PUT with 200
    }
    for status, body in bodies.items():
        server = http_servers(lambda h, status=status, body=body: (status, {"Content-Type": "application/xml"}, body))
        with pytest.raises(bs.StorageError) as e:
            st = s3_on(server.url)
            st.probe()
            st.get_bytes("x")
        message = str(e.value)
        assert "secret" not in message, message
        assert server.requests, "the server was asked"
        if status == 403:
            assert message.endswith(": AccessDenied (HTTP 403)"), message
        elif status == 500:
            assert message.endswith(": Internal Server Error (HTTP 500)"), message


def test_s3_redirect_to_elsewhere_not_followed(http_servers):
    elsewhere = http_servers(lambda h: (200, {}, b""))
    redirect = http_servers(lambda h: (307, {"Location": elsewhere.url + h.path, "x-amz-bucket-region": "eu-west-1"},
                                       b"<Error><Code>TemporaryRedirect</Code></Error>"))
    with pytest.raises(bs.StorageError, match="HTTP 307"):
        s3_on(redirect.url).probe()
    assert redirect.requests and elsewhere.requests == []


def test_s3_connection_to_local_address_refused_even_when_validation_is_bypassed(settings, http_servers):
    """Validation refuses local endpoints, but a name can resolve differently later (DNS
    rebinding) or requests can go to `<bucket>.<endpoint>`: every connection is checked too,
    before anything is sent."""
    server = http_servers(lambda h: (403, {}, b"<Error><Code>AccessDenied</Code></Error>"))
    settings(allow_local_storage_endpoints=False)
    st = bs.S3Storage(provider="minio", bucket="b", prefix="", endpoint=server.url, region="us-east-1",
                      access_key_id="a", secret_access_key="s")
    with pytest.raises(bs.StorageError, match="refused to connect to 127.0.0.1: it resolves to a loopback"):
        st.probe()
    assert server.requests == []
    # The same client goes through once local endpoints are allowed (the check is per connection).
    settings(allow_local_storage_endpoints=True)
    with pytest.raises(bs.StorageError, match="AccessDenied"):
        st.probe()
    assert server.requests
