"""A Berth app environment whose ACME CA is a private pebble, and what nginx serves over TLS."""
import contextlib
import socket
import ssl

from cryptography import x509

from support.apps_env import _berth
from support.pebble import Pebble


@contextlib.contextmanager
def berth_with_pebble(parts, tmp_path_factory, domain, **server_env):
    """An app environment (support.apps_env) pointed at its own pebble, with `domain` on
    letsencrypt-staging (that is, on pebble); `env.pebble` is the CA. `server_env`: more
    BERTH_* settings of the server."""
    env = _berth(parts, tmp_path_factory)
    pebble = Pebble(str(tmp_path_factory.mktemp("pebble")), env.http_port).start()
    env.env.update({"BERTH_ACME_DIRECTORY": pebble.directory, "BERTH_ACME_CA_BUNDLE": pebble.ca_bundle,
                    **server_env})
    env.pebble = pebble
    try:
        env.start()
        r = env.api.post("/domains", json={"domain": domain, "provider": "noop", "config": {},
                                           "tlsConfig": {"provider": "letsencrypt-staging"}})
        assert r.status_code == 201, r.text
        yield env
    finally:
        env.close()
        pebble.stop()


def served_leaf(berth, host):
    """The certificate nginx sends for `host` (SNI), without verifying it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", berth.https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def verifies_against(berth, host, root_pem):
    """Does the chain nginx serves for `host` verify against `root_pem`, for that name?"""
    ctx = ssl.create_default_context(cadata=root_pem)
    try:
        with socket.create_connection(("127.0.0.1", berth.https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLCertVerificationError:
        return False
