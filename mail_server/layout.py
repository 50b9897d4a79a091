"""Where one Berth mail server keeps everything: <data dir>/mail/, seen by the daemons through a
bind mount at /run/berth-mail/<id>/.

Why the mount: the data dir is 0700 root (web/startup.py keeps it so), and every mail daemon drops
to its own user before it touches a file (Postfix's `postfix`, Dovecot's `mail` for the Maildirs
and `dovecot` for auth, rspamd's `_rspamd`), so none of them could walk into the data dir by path.
The mail folder stays inside the data dir (it is backed up and moved with it); the daemons reach
it at the mount, whose own permissions (mail root 0711) let each user reach only its part.

The configuration the processes read is `current/` (a symlink to one `conf-<n>/` folder), so a
new configuration replaces the old one in a single rename of that symlink: a daemon that starts a
child in between reads either all of the old files or all of the new ones. Queue, sockets, pid
files and logs are per instance, so several Berth servers on one machine never share anything and
nothing under /etc/postfix, /var/spool/postfix or /run/dovecot is used.
"""
import contextlib
import dataclasses
import hashlib
import os
import pwd

from core import data_paths

RUN_BASE = "/run/berth-mail"
POSTFIX_DATA = "berth-data"     # data_directory, relative to the queue directory


def _owner(path: str, user: str) -> None:
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclasses.dataclass(frozen=True)
class Layout:
    root: str        # <data dir>/mail, where the files are (Berth's own view)
    live: str        # the mount of `root` the daemons are configured with

    @classmethod
    def of(cls, data_dir: str) -> "Layout":
        root = data_paths.mail(os.path.abspath(data_dir))
        return cls(root, os.path.join(RUN_BASE, hashlib.sha256(root.encode()).hexdigest()[:16]))

    def _(self, *parts: str) -> str:
        return os.path.join(self.live, *parts)

    # -- configuration -----------------------------------------------------------------------
    @property
    def current(self) -> str:
        """The working configuration (a symlink swapped atomically)."""
        return self._("current")

    def postfix_conf(self, base: str | None = None) -> str:
        return os.path.join(base or self.current, "postfix")

    def dovecot_conf(self, base: str | None = None) -> str:
        return os.path.join(base or self.current, "dovecot", "dovecot.conf")

    def rspamd_conf(self, base: str | None = None) -> str:
        return os.path.join(base or self.current, "rspamd")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, ".lock")

    @property
    def state(self) -> str:
        """JSON: the last error applying or starting (shown by status())."""
        return os.path.join(self.root, "state.json")

    # -- runtime -------------------------------------------------------------------------------
    @property
    def queue(self) -> str:
        return self._("postfix-queue")

    @property
    def private(self) -> str:
        """Postfix's private socket folder: where Dovecot and rspamd put the sockets Postfix uses."""
        return os.path.join(self.queue, "private")

    @property
    def postfix_data(self) -> str:
        return os.path.join(self.queue, POSTFIX_DATA)

    @property
    def postfix_pid(self) -> str:
        return os.path.join(self.queue, "pid", "master.pid")

    @property
    def dovecot_base(self) -> str:
        return self._("dovecot")

    @property
    def dovecot_pid(self) -> str:
        return os.path.join(self.dovecot_base, "master.pid")

    @property
    def rspamd_run(self) -> str:
        return self._("rspamd")

    @property
    def rspamd_pid(self) -> str:
        return os.path.join(self.root, "rspamd.pid")

    @property
    def vmail(self) -> str:
        """Maildirs: vmail/<domain>/<local part>/Maildir (owned by `mail`)."""
        return self._("vmail")

    @property
    def dkim(self) -> str:
        return os.path.join(self.root, "dkim")

    @property
    def tls(self) -> str:
        """The self-signed certificate used while Berth hands none (0600 key)."""
        return self._("tls")

    @property
    def logs(self) -> str:
        return self._("logs")

    def log_files(self) -> dict[str, str]:
        return {"postfix": os.path.join(self.logs, "postfix.log"),
                "dovecot": os.path.join(self.logs, "dovecot.log"),
                "rspamd": os.path.join(self.logs, "rspamd.log")}

    def make_dirs(self) -> None:
        """The folders, with the owners and modes the daemons need (called with the mount up)."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        os.chmod(self.root, 0o711)
        os.makedirs(self.queue, mode=0o755, exist_ok=True)
        os.chmod(self.queue, 0o755)      # Postfix's: `postfix check` makes its subfolders
        for d in (self.postfix_data, self.dovecot_base, self.rspamd_run, self.vmail, self.dkim, self.tls, self.logs):
            os.makedirs(d, mode=0o700, exist_ok=True)
        _owner(self.postfix_data, "postfix")
        _owner(self.vmail, "mail")
        _owner(self.rspamd_run, "_rspamd")
        os.chmod(self.logs, 0o711)
