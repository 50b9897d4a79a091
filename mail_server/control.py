"""Changing the working configuration safely: render → check → swap → start or reload.

A new configuration is written into a fresh `conf-<n>/` folder and checked there by Postfix,
Dovecot and rspamd; only then does the `current` symlink move to it (one rename), and the daemons
are started or reloaded. A configuration a checker refuses is deleted and the working one keeps
serving. One change at a time (a file lock), across threads, tasks and gunicorn workers.
"""
import contextlib
import fcntl
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from certificates.self_signed import generate_self_signed
from core import files
from mail_server import dkim, dovecot_config, maps, mounts, postfix_config, processes, rspamd_config, state
from mail_server.errors import MailServerError
from mail_server.layout import Layout

if TYPE_CHECKING:
    from mail_server import MailServer

CONF_PREFIX = "conf-"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Variables the auth program needs from the environment Berth started Dovecot with (names only go
# into dovecot.conf; the values stay in the process environment). A fixed list: the program reads
# Berth's settings from its auth file, and names taken from the rendering process's environment
# made dovecot.conf differ between the API server and a task (which has BERTH_DATABASE_URL set),
# so Dovecot was reloaded whenever the other one applied, dropping Postfix's SASL connection (the
# next AUTH answered 454) and logins in flight.
AUTH_ENV = ("HOME", "LANG", "LC_ALL", "PATH", "PYTHONPATH", "VIRTUAL_ENV")


@contextlib.contextmanager
def locked(layout: Layout, mount: bool = True) -> Iterator[None]:
    """Hold the layout's lock, with the mount the daemons see up (and the folders made)."""
    os.makedirs(layout.root, mode=0o711, exist_ok=True)
    with open(layout.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if mount:
                mounts.mount(layout)
                layout.make_dirs()
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def child_env() -> dict[str, str]:
    """The environment the daemons start with: Berth's own (the auth program needs the database
    settings), copied for the child."""
    return {k: v for k, v in os.environ.items() if ENV_NAME.match(k)}


def _ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _tls(layout: Layout, snapshot: dict) -> tuple[str, str]:
    """The certificate the mail ports serve: the one Berth hands in the snapshot, or a self-signed
    one for the hostname (made once per hostname)."""
    given = snapshot.get("tls") or {}
    if given.get("certFile") and given.get("keyFile"):
        return given["certFile"], given["keyFile"]
    host = maps.snapshot_hostname(snapshot)
    cert, key = os.path.join(layout.tls, host + ".crt"), os.path.join(layout.tls, host + ".key")
    if not (os.path.exists(cert) and os.path.exists(key)):
        cert_pem, key_pem = generate_self_signed(host)
        files.write_atomic(key, key_pem, 0o600)
        files.write_atomic(cert, cert_pem, 0o644)
    return cert, key


def render(server: "MailServer", snapshot: dict, conf_dir: str) -> dict[str, tuple[str, int]]:
    """{path relative to conf_dir: (text, mode)} of the whole configuration of `snapshot`."""
    layout = server.layout
    tables = maps.tables(snapshot)
    tls = _tls(layout, snapshot)
    ipv6 = _ipv6() if not server.listen else ":" in server.listen
    out = {f"postfix/{name}": (text, 0o600) for name, text in tables.files.items()}
    main_cf = postfix_config.main_cf(layout, conf_dir, snapshot, tables, tls, server.listen, ipv6)
    out["postfix/main.cf"] = (main_cf, 0o644)
    out["postfix/master.cf"] = (postfix_config.master_cf(server.ports, server.listen), 0o644)
    auth = [a for a in (snapshot.get("authProgram") or []) if isinstance(a, str)]
    if not auth:
        raise MailServerError("mail server: the snapshot names no authProgram")
    out["dovecot/auth-program"] = (dovecot_config.auth_wrapper(auth), 0o700)
    out["dovecot/dovecot.conf"] = (dovecot_config.render(layout, conf_dir, snapshot, server.ports, tls,
                                                         server.listen, ipv6, list(AUTH_ENV)), 0o600)
    enabled = [maps.domain(d["domain"]) for d in snapshot.get("domains", []) if d.get("enabled")]
    keys = {d: dkim.signing_key(layout, d) for d in enabled}
    for path, text in rspamd_config.render(layout, conf_dir, snapshot, keys, "cloudron", server.resolver).items():
        out[f"rspamd/{path}"] = (text, 0o600)
    return out


def _changed(conf_dir: str, rendered: dict[str, tuple[str, int]]) -> set[str]:
    """The files (relative paths) that differ from the working configuration's: only their
    programs are checked and reloaded (a new mailbox touches Postfix's tables, and rspamd need
    not recompile its rules for it)."""
    return {p for p, (t, _) in rendered.items() if files.read_text(os.path.join(conf_dir, p)) != t}


def _write(conf_dir: str, rendered: dict[str, tuple[str, int]]) -> None:
    """Write the files, dated a few seconds back: Postfix's programs wait until a main.cf they
    read is no longer "being edited" (modified in the last seconds), which would add seconds to
    every change. The files are new and complete before anything reads them."""
    past = time.time() - 5
    for rel, (text, mode) in rendered.items():
        path = os.path.join(conf_dir, rel)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        files.write_atomic(path, text, mode)
        os.utime(path, (past, past))


def _next_conf(layout: Layout) -> str:
    n = time.time_ns()
    return os.path.join(layout.live, f"{CONF_PREFIX}{n}")


def _swap(layout: Layout, conf_dir: str) -> None:
    link = layout.current + ".new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(os.path.basename(conf_dir), link)
    os.replace(link, layout.current)


def _prune(layout: Layout, keep: int = 2) -> None:
    """Delete old configurations, keeping the working one and the one before it (daemons that
    have not yet restarted may still open its tables)."""
    current = os.path.basename(os.path.realpath(layout.current))
    confs = sorted(d for d in os.listdir(layout.live) if d.startswith(CONF_PREFIX))
    for d in confs[:-keep]:
        if d != current:
            shutil.rmtree(os.path.join(layout.live, d), ignore_errors=True)


def _enabled(snapshot: dict) -> bool:
    return any(d.get("enabled") for d in snapshot.get("domains", []))


def apply(server: "MailServer", snapshot: dict) -> None:
    layout = server.layout
    with locked(layout):
        conf_dir = _next_conf(layout)
        try:
            rendered = render(server, snapshot, conf_dir)
            current = os.path.realpath(layout.current) if os.path.islink(layout.current) else None
            changed = _changed(current, _rebase(rendered, conf_dir, current)) if current else set(rendered)
            if changed:
                _write(conf_dir, rendered)
                processes.check(layout, conf_dir, changed)
                _swap(layout, conf_dir)
        except MailServerError as e:
            shutil.rmtree(conf_dir, ignore_errors=True)
            state.write(layout, error=e.message)
            raise
        except BaseException:
            shutil.rmtree(conf_dir, ignore_errors=True)
            raise
        _prune(layout)
        state.write(layout, enabled=_enabled(snapshot))
        if not _enabled(snapshot):
            _stop_all(layout)
            state.write(layout, error=None)
            mounts.unmount(layout)
            return
        _run_all(layout, reload={path.split("/", 1)[0] for path in changed})


def _rebase(rendered: dict, conf_dir: str, other: str) -> dict:
    """The rendering as it would read in `other` (the texts name their own folder)."""
    return {p: (t.replace(conf_dir, other), m) for p, (t, m) in rendered.items()}


def _run_all(layout: Layout, reload: set[str]) -> None:
    """Start what is not running, reload the running programs named in `reload`."""
    env = child_env()
    try:
        for name in processes.NAMES:
            if processes.pid(layout, name) is None:
                processes.start(layout, name, env)
            elif name in reload:
                processes.reload(layout, name, env)
    except MailServerError as e:
        state.write(layout, error=e.message)
        raise
    state.write(layout, error=None)


def _stop_all(layout: Layout) -> None:
    for name in reversed(processes.NAMES):
        processes.stop(layout, name)


def stop(server: "MailServer") -> None:
    with locked(server.layout, mount=False):
        _stop_all(server.layout)
        mounts.unmount(server.layout)


def restart(server: "MailServer") -> None:
    layout = server.layout
    with locked(layout):
        _stop_all(layout)
        if os.path.islink(layout.current) and state.read(layout).get("enabled"):
            _run_all(layout, reload=set())
