"""Bringing the mail server back after Berth or the machine restarted.

The daemons outlive a Berth restart, but not a reboot (or a `mail_server.stop`), and nothing else
calls mail_server.apply until the next change. So the first health check of every server process
(apps.health.check_all, where the reverse proxy is brought back too) calls `restore_soon()`: when
any mail domain is enabled, the current snapshot is applied once. Applying starts what is not
running and changes nothing that is (an identical rendering is neither checked nor reloaded), so
doing it after a plain restart costs a rendering or two.

It runs in its own thread: starting rspamd can take a minute on a cold machine, and neither the
server's start nor the health checks of apps may wait for it. A failure is logged, kept in the mail
server's status (mail_server records it) and retried after RETRY_SECS, not at every health check.
Once restored, later health checks look at the daemons' pid files: one that died while Berth runs
is brought back the same way, with a `service.restart` event (as the addon services are).
"""
import logging
import threading
import time

import eventlog
import mail_server
from mail import sync
from models import database

log = logging.getLogger("berth.mail")
RETRY_SECS = 60.0

_lock = threading.Lock()
_state = {"done": False, "running": False, "next_try": 0.0}


def restore_soon() -> bool:
    """Start the restoring thread unless it is running or failed too recently, or it ran
    successfully and the daemons still run (one that died since, say by a crash or the OOM killer,
    is brought back the same way). True when a thread was started."""
    with _lock:
        if _state["running"] or time.monotonic() < _state["next_try"]:
            return False
        if _state["done"] and not _daemon_down():
            return False
        _state["running"] = True
    threading.Thread(target=_restore, name="mail-restore", daemon=True).start()
    return True


def _daemon_down() -> bool:
    """Is a mail daemon missing while a mail domain is enabled? (Pid files and one query: cheap
    enough for every health check.)"""
    return not mail_server.status()["running"] and sync.any_enabled()


def restore() -> bool:
    """Apply the snapshot when any mail domain is enabled (in the calling thread). True if applied."""
    if not sync.any_enabled():
        return False
    sync.apply()
    # The first apply may take a minute (starting the daemons) and read its snapshot before it: a
    # change committed meanwhile may have been applied before ours and then overwritten by it. A
    # second apply reads the database again; with everything running it only renders and compares.
    sync.apply()
    return True


def _restore() -> None:
    ok = False
    try:
        down = not mail_server.status()["running"]
        if restore():
            log.info("mail server restored from the database")
            if down:    # after a reboot, or a daemon that died: say so, as for the addon services
                eventlog.record("service.restart", eventlog.SYSTEM, id="mail", reason="it was not running")
        ok = True
    except Exception:  # noqa: BLE001 - a background thread: log, retried after RETRY_SECS
        log.exception("restoring the mail server failed; retried in %d s", RETRY_SECS)
    finally:
        if not database.is_closed():
            database.close()  # this thread's own connection
        with _lock:
            _state.update(running=False, done=ok, next_try=time.monotonic() + (0 if ok else RETRY_SECS))
