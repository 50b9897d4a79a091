"""Network volumes (cifs, nfs, sshfs): their mount options, and mounting them with the host's tools.

Options are checked field by field before anything runs (each value ends up in a program's
arguments or in a credentials file, so control characters, a leading '-' and, in host names,
anything but a host name or address are refused). The secrets (`password`, `privateKey`) are
shown as core.masking.MASK; sent back as MASK they mean "keep the stored one", as for the backup
storage; they are stored sealed (volumes.records). They never reach a command line (where `ps`
shows them): mount.cifs reads a credentials file and sshfs an identity file, both 0600 in a 0700
folder under the data dir (data_paths.volume_keys).

A share is mounted at <data>/volumes/<id> (the volume's hostPath) by the program of its type
(mount.cifs from cifs-utils, mount.nfs from nfs-common, sshfs). When the program is not installed
the volume is refused with a message naming it, instead of a mount that could never work.
"""
import os
import re
import shutil

from core import commands
from core.errors import BadRequest
from core.masking import MASK

TOOLS = {"cifs": ("mount.cifs", "cifs-utils"), "nfs": ("mount.nfs", "nfs-common"), "sshfs": ("sshfs", "sshfs")}
NETWORK_TYPES = tuple(TOOLS)
SECRETS = ("password", "privateKey")
# field -> (kind, required) per type; other fields sent are dropped
FIELDS = {
    "cifs": {"host": ("host", True), "remoteDir": ("text", True), "username": ("text", True),
             "password": ("secret", True), "seal": ("bool", False)},
    "nfs": {"host": ("host", True), "remoteDir": ("path", True)},
    "sshfs": {"host": ("host", True), "port": ("port", False), "user": ("text", True),
              "remoteDir": ("path", True), "privateKey": ("secret", True)},
}
HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*|[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}))$")
MOUNT_TIMEOUT = 60


def _text(value: object, field: str, kind: str) -> object:
    if kind == "bool":
        if not isinstance(value, bool):
            raise BadRequest("must be a boolean", field)
        return value
    if kind == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise BadRequest("must be a port number (1-65535)", field)
        return value
    if not isinstance(value, str) or not value:
        raise BadRequest("must be a non-empty string", field)
    if kind != "secret" and any(ord(c) < 32 or c == "\x7f" for c in value):
        raise BadRequest("must not contain control characters", field)
    if kind == "secret" and field.endswith("password") and any(c in value for c in "\r\n\0"):
        raise BadRequest("must not contain line breaks", field)   # one line of the credentials file
    if kind in ("text", "path") and value.startswith("-"):
        raise BadRequest("must not start with '-'", field)
    if kind == "host" and not HOST.match(value):
        raise BadRequest("must be a host name or an IP address", field)
    if kind == "path" and not value.startswith("/"):
        raise BadRequest("must be an absolute path on the server", field)
    if field.endswith("remoteDir") and (".." in value.split("/") or "," in value):
        raise BadRequest("must not contain '..' or ','", field)
    return value


def check_options(mount_type: str, options: object, stored: dict | None = None) -> dict:
    """The mount options of `mount_type` from the request, checked; a secret sent as MASK (or left
    out, when `stored` has one) keeps the stored value."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise BadRequest("must be an object", "mountOptions")
    stored = stored or {}
    clean = {}
    for field, (kind, required) in FIELDS[mount_type].items():
        value = options.get(field)
        if kind == "secret" and value in (MASK, None) and stored.get(field):
            clean[field] = stored[field]
            continue
        if kind == "secret" and value == MASK:     # "keep the stored one", but none is stored
            raise BadRequest("is required (none is stored to keep)", f"mountOptions.{field}")
        if value is None:
            if required:
                raise BadRequest("is required", f"mountOptions.{field}")
            continue
        clean[field] = _text(value, f"mountOptions.{field}", kind)
    if mount_type == "sshfs":
        clean.setdefault("port", 22)
    return clean


def masked(options: dict) -> dict:
    """The options as an answer shows them: each set secret as MASK."""
    return {k: (MASK if k in SECRETS and v else v) for k, v in (options or {}).items()}


def missing_tool(mount_type: str) -> str | None:
    """Why `mount_type` cannot be mounted here (its program is not installed), or None."""
    program, package = TOOLS[mount_type]
    if shutil.which(program):
        return None
    return f"mounting {mount_type} shares needs {program} (Debian package {package}), which is not installed"


def require_tool(mount_type: str) -> None:
    why = missing_tool(mount_type)
    if why:
        raise BadRequest(why, "mountType")


def _private_file(folder: str, name: str, content: str) -> str:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return path


def mount_argv(mount_type: str, options: dict, target: str, keys_dir: str) -> list[str]:
    """The command that mounts the share at `target`; writes the credentials it reads to `keys_dir`."""
    if mount_type == "cifs":
        creds = _private_file(keys_dir, "credentials",
                              f"username={options['username']}\npassword={options['password']}\n")
        opts = f"credentials={creds}" + (",seal" if options.get("seal") else "")
        share = options["remoteDir"].lstrip("/")
        return ["mount.cifs", f"//{options['host']}/{share}", target, "-o", opts]
    if mount_type == "nfs":
        return ["mount.nfs", f"{options['host']}:{options['remoteDir']}", target]
    key = options["privateKey"]
    identity = _private_file(keys_dir, "id", key if key.endswith("\n") else key + "\n")
    opts = ",".join([f"IdentityFile={identity}", f"port={options.get('port', 22)}", "allow_other", "reconnect",
                     "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "BatchMode=yes"])
    return ["sshfs", f"{options['user']}@{options['host']}:{options['remoteDir']}", target, "-o", opts]


def mount(mount_type: str, options: dict, target: str, keys_dir: str) -> None:
    """Mount the share at `target` (created if missing); BadRequest with the program's complaint
    when it fails (a wrong password, an unreachable host), as Cloudron answers a failed mount."""
    require_tool(mount_type)
    os.makedirs(target, mode=0o755, exist_ok=True)
    try:
        commands.run(mount_argv(mount_type, options, target, keys_dir), timeout=MOUNT_TIMEOUT)
    except (commands.CommandError, OSError) as e:
        raise BadRequest(f"could not mount the share: {e}", "mountOptions") from None


def unmount(target: str) -> None:
    """Unmount `target` (lazily: a hung share must not hang Berth); nothing mounted there is fine."""
    for argv in (["fusermount", "-u", "-z", target], ["umount", "-l", target]):
        if shutil.which(argv[0]):
            try:
                commands.run(argv, timeout=MOUNT_TIMEOUT)
                return
            except commands.CommandError:
                continue
