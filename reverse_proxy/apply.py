"""Changing the working configuration safely: every change is first applied to a copy
(candidate/) and checked with `nginx -t`; a configuration nginx rejects never replaces the
working one. One change at a time (a file lock), across threads, tasks and gunicorn workers."""
import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator

from core import files
from reverse_proxy import nginx_process
from reverse_proxy.layout import Layout

CONFIG_MODE = 0o600     # nginx's master reads its configuration as root


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """Hold the layout's lock (its directories are made first)."""
    layout.make_dirs()
    with open(layout.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)




def _put(path, text):
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        files.write_atomic(path, text, CONFIG_MODE)


def apply(layout: Layout, changes: dict[str, str | None], main: Callable[[str | None], str]) -> bool:
    """Check `changes` ({vhost path in layout.sites: text, or None to delete}) and nginx.conf
    (`main(sites_dir)` renders it) together on a copy of the configuration; only if nginx accepts
    the copy, put them in place. The caller holds locked(layout) and reloads. Returns True when
    something changed."""
    changes = {p: t for p, t in changes.items() if files.read_text(p) != t}
    working = main(None)
    if not changes and files.read_text(layout.conf) == working:
        return False
    candidate = layout.candidate
    shutil.rmtree(candidate, ignore_errors=True)
    shutil.copytree(layout.sites, os.path.join(candidate, "sites"))
    try:
        for path, text in changes.items():
            _put(os.path.join(candidate, "sites", os.path.basename(path)), text)
        candidate_conf = os.path.join(candidate, "nginx.conf")
        _put(candidate_conf, main(os.path.join(candidate, "sites")))
        nginx_process.test(layout, candidate_conf)
    finally:
        shutil.rmtree(candidate, ignore_errors=True)
    for path, text in changes.items():
        _put(path, text)
    _put(layout.conf, working)
    return True
