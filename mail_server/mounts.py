"""The bind mount through which the mail daemons see <data dir>/mail (why: layout.py).

Made before anything starts and removed once everything stopped; it survives a restart of Berth
(the daemons keep running on it) and Berth recognises it in /proc/self/mountinfo.
"""
import contextlib
import os

from core import commands
from mail_server.errors import MailServerError
from mail_server.layout import RUN_BASE, Layout


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounted(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(_unescape(line.split()[4]) == path for line in f if len(line.split()) > 4)
    except OSError:
        return False


def mount(layout: Layout) -> None:
    if mounted(layout.live):
        return
    os.makedirs(RUN_BASE, mode=0o755, exist_ok=True)
    os.chmod(RUN_BASE, 0o755)
    os.makedirs(layout.live, mode=0o755, exist_ok=True)
    try:
        commands.run(["mount", "--bind", layout.root, layout.live], timeout=30)
    except (OSError, commands.CommandError) as e:
        raise MailServerError(f"mail server: cannot mount {layout.root} at {layout.live}: {e}") from None


def unmount(layout: Layout) -> None:
    if mounted(layout.live):
        try:
            commands.run(["umount", layout.live], timeout=30)
        except (OSError, commands.CommandError) as e:
            raise MailServerError(f"mail server: cannot unmount {layout.live}: {e}") from None
    with contextlib.suppress(OSError):
        os.rmdir(layout.live)
