"""An app's data folder as tests compare it before and after a backup, restore, clone or move:
`populate` leaves files of every kind an app leaves (modes, owners, mtimes, links, deep and
non-ASCII names), `snapshot` describes a folder so two can be compared exactly."""
import hashlib
import os
import stat

STARTUP_FILES = ("starts", "env")   # the test image (write_data) rewrites these on every start


def snapshot(root, skip=STARTUP_FILES, with_root=False):
    """{relative path: what it is}: files by mode, owner, mtime and sha256 of the bytes, folders by
    mode and owner, symlinks by target; `with_root` adds the folder's own mode as ".". """
    out = {".": ("dir", stat.S_IMODE(os.lstat(root).st_mode))} if with_root else {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in skip:
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            else:
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, digest)
    return out


def populate(root, escape_link=False):
    """Files of every kind an app leaves in its data folder; `escape_link` adds `escape -> /etc`
    (to be copied as a link, never followed)."""
    def write(rel, data, mode=0o644):
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.chmod(full, mode)
    write("docs/readme.txt", b"hello app data\n" * 100)
    write("bin/tool.sh", b"#!/bin/sh\necho tool\n", 0o755)
    write("secret/key.pem", b"-----BEGIN PRIVATE KEY-----\nxyz\n", 0o600)
    os.chmod(os.path.join(root, "secret"), 0o700)
    write("blob.bin", os.urandom(512 * 1024) + b"\0" * (1024 * 1024))
    write("empty", b"")
    write("deep/a/b/c/d.txt", b"deep\n")
    write("name with spaces \u00fc\u00f1.txt", "\u00fcnicode".encode())
    os.chown(os.path.join(root, "docs/readme.txt"), 1000, 1000)
    os.utime(os.path.join(root, "bin/tool.sh"), ns=(1_000_000_000_123_456_789, 1_000_000_000_123_456_789))
    os.symlink("docs/readme.txt", os.path.join(root, "latest"))
    os.symlink("nowhere", os.path.join(root, "broken"))
    if escape_link:
        os.symlink("/etc", os.path.join(root, "escape"))
