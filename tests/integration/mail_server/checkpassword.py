"""A checkpassword program for the mail server tests (Berth's real one is mail.checkpassword):
the password of <address> is "good-<address>". Protocol: fd 3 carries user\\0password\\0; on
success exec the reply program Dovecot names in argv[1:] with USER set, on a bad login exit 1."""
import os
import sys

data = b""
while True:
    chunk = os.read(3, 512)
    if not chunk:
        break
    data += chunk
user, password = (data.split(b"\0") + [b"", b""])[:2]
if not user or password != b"good-" + user:
    sys.exit(1)
os.environ["USER"] = user.decode()
os.execv(sys.argv[1], sys.argv[1:])
