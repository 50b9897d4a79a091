#!/usr/bin/env python3
"""What Berth costs its mail server, beside the baseline measured in the same run:

    .venv/bin/python bench/mail.py [--messages 1000] [--mailboxes 10] [--runs 2] [--present 10000]
                                   [--json out.json]

1. Throughput. Two mail servers of the same software (Postfix, Dovecot, rspamd: mail_server/) on
   free 127.0.0.1 ports, each with one mail domain and --mailboxes mailboxes:
   - Berth: a real Berth (gunicorn + SQLite in a temp dir) set up over the API (domain, mail
     enabled, a user, the mailboxes), so its mail server is the one Berth renders and runs, with
     Berth's login program and Berth itself running beside it (health checks, scheduler);
   - direct: a mail server configured ONCE by calling mail_server.MailServer(...).apply() with a
     hand-made snapshot of the same domain and mailboxes (a tiny fixed-password login program
     instead of Berth's), no Berth process and no API call anywhere.
   Each run sends --messages messages over SMTP (port 25, 4 connections in parallel, spread over
   the mailboxes) and times from the first submission until every message is readable over IMAP
   (one logged-in IMAP connection per mailbox made before the clock starts, asking STATUS every
   20 ms). Runs alternate Berth / direct, --runs times; prints the median of each and Berth's
   overhead in % (target: under 10%). One warm-up of 20 messages on each is not counted.
2. A mailbox added with --present present (Berth only): that many mailboxes are written straight
   into Berth's database (10,000 API calls, each re-applying the server, would take hours), one
   API change makes the server serve them, then one mailbox is added with
   POST /mail/{domain}/mailboxes and the clock runs until the server accepts mail for it (RCPT TO
   answered 250, asked every 20 ms). Three times; prints each and the median (target: under 2 s).

Both mail servers, Berth and the temp dirs are removed at the end, whatever happened. Exit
status is 0 whatever the figures (a benchmark reports, it does not fail CI); 2 means the
benchmark itself could not run.
"""
import argparse
import concurrent.futures
import email.message
import imaplib
import json
import os
import re
import shutil
import smtplib
import ssl
import statistics
import sys
import tempfile
import time

import common  # first: puts the repository and tests/ on sys.path
import requests

from support.harness import free_port

DOMAIN = "bench-mail.test"
HOSTNAME = f"my.{DOMAIN}"
PASSWORD = "Bench-pass-1"
SENDERS = 4
POLL_SECS = 0.02
DELIVERY_TIMEOUT = 600
TARGET_OVERHEAD_PCT = 10.0
TARGET_ADD_SECS = 2.0

# The baseline's login program: the checkpassword protocol with one fixed password (no database).
DIRECT_AUTH = """\
import os, sys
data = os.read(3, 4096).split(b"\\0")
if len(data) < 2 or (os.environ.get("AUTHORIZED") != "1" and data[1].decode() != sys.argv[1]):
    sys.exit(1)
env = dict(os.environ, USER=data[0].decode().lower())
if env.get("AUTHORIZED") == "1":
    env["AUTHORIZED"] = "2"
os.execve(sys.argv[2], sys.argv[2:], env)
"""


def ports():
    return {"smtp": free_port(), "submission": free_port(), "imap": free_port(), "imaps": free_port()}


def tls():
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


class Target:
    """One mail server under test: where it listens and the mailboxes it has."""

    def __init__(self, name, ports, boxes):
        self.name, self.ports, self.boxes = name, ports, boxes
        self.imaps = []

    def connect(self):
        for box in self.boxes:
            imap = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=30)
            imap.starttls(tls())
            imap.login(box, PASSWORD)
            self.imaps.append(imap)

    def counts(self):
        total = 0
        for imap in self.imaps:
            _, data = imap.status("INBOX", "(MESSAGES)")
            total += int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))
        return total

    def close(self):
        for imap in self.imaps:
            try:
                imap.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
        self.imaps = []


def message(rcpt, i):
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bench@elsewhere.test", rcpt, f"bench {i}"
    msg.set_content(f"message {i}\n" + "lorem ipsum dolor sit amet\n" * 10)
    return msg


def send_all(target, count):
    """Send `count` messages over SENDERS parallel SMTP connections, round robin over the boxes."""
    def sender(k):
        with smtplib.SMTP("127.0.0.1", target.ports["smtp"], timeout=60) as smtp:
            for i in range(k, count, SENDERS):
                smtp.send_message(message(target.boxes[i % len(target.boxes)], i))
    with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
        for f in [pool.submit(sender, k) for k in range(SENDERS)]:
            f.result()


def delivery_time(target, count):
    """Seconds from the first submission until `count` more messages are readable over IMAP."""
    if not target.imaps:
        target.connect()
    before = target.counts()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sending = pool.submit(send_all, target, count)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while target.counts() - before < count:
            if sending.done() and sending.exception() is not None:
                raise sending.exception()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.name}: {target.counts() - before} of {count} arrived")
            time.sleep(POLL_SECS)
        elapsed = time.perf_counter() - start
        sending.result()
    return elapsed


class Bench:
    def __init__(self, mailboxes):
        from mail_server import processes
        if not processes.available():
            raise RuntimeError("Postfix, Dovecot and rspamd are needed (scripts/system.sh packages test)")
        self.tmp = tempfile.mkdtemp(prefix="berth-bench-mail-")
        self.names = [f"box{i}" for i in range(mailboxes)]
        self.server = None
        self.berth_ports = ports()
        self.direct_ports = ports()
        self.direct = None

    # -- Berth ------------------------------------------------------------------------------------

    def start_berth(self):
        p = self.berth_ports
        env = {"BERTH_MAIL_SMTP_PORT": str(p["smtp"]), "BERTH_MAIL_SUBMISSION_PORT": str(p["submission"]),
               "BERTH_MAIL_IMAP_PORT": str(p["imap"]), "BERTH_MAIL_IMAPS_PORT": str(p["imaps"]),
               "BERTH_PUBLIC_IP": "192.0.2.10", "BERTH_RATE_LIMIT": "0"}
        self.server = common.start_server(self.tmp, env)
        self.api = common.activate(self.server, DOMAIN, through_setup=True)
        r = requests.post(f"{self.server.api}/mail/{DOMAIN}/enable", json={"enabled": True}, timeout=600,
                          headers={"Authorization": f"Bearer {self.api.token}"})
        if r.status_code != 202:
            raise RuntimeError(f"enabling mail answered {r.status_code}: {r.text[:300]}")
        r = self.api.post("/users", json={"username": "reader", "email": "reader@elsewhere.test",
                                          "password": PASSWORD})
        r.raise_for_status()
        self.user_id = r.json()["id"]
        for name in self.names:
            self.add_mailbox(name)
        return Target("Berth", p, [f"{n}@{DOMAIN}" for n in self.names])

    def add_mailbox(self, name):
        r = self.api.post(f"/mail/{DOMAIN}/mailboxes", json={"name": name, "ownerId": self.user_id,
                                                              "ownerType": "user"})
        if r.status_code != 201:
            raise RuntimeError(f"adding mailbox {name} answered {r.status_code}: {r.text[:300]}")

    # -- direct -----------------------------------------------------------------------------------

    def start_direct(self):
        import mail_server
        p = self.direct_ports
        data_dir = os.path.join(self.tmp, "direct")
        os.makedirs(data_dir, mode=0o700)
        auth = os.path.join(data_dir, "auth.py")
        with open(auth, "w") as f:
            f.write(DIRECT_AUTH)
        self.direct = mail_server.MailServer(data_dir, p["smtp"], p["submission"], p["imap"], p["imaps"])
        self.direct.apply({
            "hostname": HOSTNAME,
            "domains": [{"domain": DOMAIN, "enabled": True, "catchAll": [], "mailFromValidation": True,
                         "relay": {"provider": "cloudron-smtp"}, "banner": {"text": "", "html": ""}}],
            "mailboxes": [{"address": f"{n}@{DOMAIN}", "active": True} for n in self.names],
            "aliases": [], "lists": [], "maxEmailSize": 25 * 1024 * 1024,
            "spamAcl": {"allowlist": [], "blocklist": []}, "spamCustomConfig": "",
            "authProgram": [sys.executable, auth, PASSWORD]})
        return Target("direct", p, [f"{n}@{DOMAIN}" for n in self.names])

    # -- one mailbox among many ---------------------------------------------------------------------

    def fill(self, present):
        """Write `present` mailboxes straight into Berth's database (see module docs)."""
        from models import open_database
        from models.mail import MAILBOX, MailAddress
        db = open_database(f"sqlite:///{os.path.join(self.server.data_dir, 'berth.db')}")
        rows = [{"name": f"many{i}", "domain": DOMAIN, "type": MAILBOX, "owner_id": self.user_id,
                 "owner_type": "user", "active": True} for i in range(present)]
        with db.atomic():
            for start in range(0, len(rows), 500):
                MailAddress.insert_many(rows[start:start + 500]).execute()
        db.close()
        start = time.perf_counter()
        self.add_mailbox("filled")          # one change: the server now serves all of them
        return time.perf_counter() - start

    def accepted_after(self, name):
        """Seconds from POST /mail/{domain}/mailboxes until RCPT TO <name@domain> answers 250."""
        rcpt = f"{name}@{DOMAIN}"
        start = time.perf_counter()
        self.add_mailbox(name)
        answered = time.perf_counter() - start
        deadline = time.monotonic() + 60
        while True:
            with smtplib.SMTP("127.0.0.1", self.berth_ports["smtp"], timeout=30) as smtp:
                smtp.ehlo()
                smtp.mail("bench@elsewhere.test")
                code, _ = smtp.rcpt(rcpt)
            if code == 250:
                return answered, time.perf_counter() - start
            if time.monotonic() > deadline:
                raise RuntimeError(f"{rcpt} still refused ({code}) after 60 s")
            time.sleep(POLL_SECS)

    def cleanup(self):
        import mail_server
        try:
            if self.server is not None:
                self.server.stop()
                p = self.berth_ports
                mail_server.MailServer(self.server.data_dir, p["smtp"], p["submission"], p["imap"],
                                       p["imaps"]).stop()
        finally:
            if self.direct is not None:
                self.direct.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def measure(bench, args):
    """The figures (see the module docs); common.run cleans up."""
    print("starting Berth and its mail server (rspamd's first start takes a while) ...", flush=True)
    berth = bench.start_berth()
    print("starting the directly configured mail server ...", flush=True)
    direct = bench.start_direct()
    targets = [berth, direct]
    try:
        for target in targets:
            target.connect()
            delivery_time(target, 20)       # warm-up: not counted
        times = {"Berth": [], "direct": []}
        for i in range(args.runs):
            for target in targets:
                times[target.name].append(delivery_time(target, args.messages))
            print(f"  run {i + 1}/{args.runs}: Berth {times['Berth'][-1]:.2f} s, "
                  f"direct {times['direct'][-1]:.2f} s", flush=True)
    finally:
        for target in targets:
            target.close()
    bench.direct.stop()                 # only Berth's server from here on
    print(f"writing {args.present} mailboxes into Berth's database ...", flush=True)
    fill_secs = bench.fill(args.present)
    adds = [bench.accepted_after(f"newcomer{i}") for i in range(3)]
    return times, fill_secs, adds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per measured run")
    parser.add_argument("--mailboxes", type=int, default=10, help="mailboxes the messages are spread over")
    parser.add_argument("--runs", type=int, default=2, help="measured runs of each kind (alternating)")
    parser.add_argument("--present", type=int, default=10000, help="mailboxes present when one is added")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    figures = common.run(lambda: Bench(args.mailboxes), lambda bench: measure(bench, args))
    if figures is None:
        return 2
    times, fill_secs, adds = figures

    b50, d50 = statistics.median(times["Berth"]), statistics.median(times["direct"])
    overhead = (b50 - d50) / d50 * 100
    print()
    print(f"{args.messages} messages over SMTP to {args.mailboxes} mailboxes until all are readable over IMAP "
          f"({args.runs} runs each):")
    print(f"  {'':36} {'median':>9} {'best':>9} {'msg/s':>8}")
    for name, label in (("Berth", "Berth's mail server"), ("direct", "direct (mail_server.apply once)")):
        values = times[name]
        print(f"  {label:36} {statistics.median(values):8.2f}s {min(values):8.2f}s "
              f"{args.messages / statistics.median(values):8.0f}")
    verdict = "met" if overhead < TARGET_OVERHEAD_PCT else "MISSED"
    print(f"  {'overhead of Berth':36} {overhead:8.1f}%   (target < {TARGET_OVERHEAD_PCT:g}%: {verdict})")
    print()
    print(f"One mailbox added with {args.present} present (the change that made the server serve them all: "
          f"{fill_secs:.2f} s):")
    for i, (answered, accepted) in enumerate(adds):
        print(f"  add {i + 1}: API answered after {answered:.2f} s, mail accepted after {accepted:.2f} s")
    median_add = statistics.median(a for _, a in adds)
    verdict = "met" if median_add < TARGET_ADD_SECS else "MISSED"
    print(f"  median until accepted {median_add:.2f} s   (target < {TARGET_ADD_SECS:g} s: {verdict})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"delivery": times, "overhead_pct": overhead, "fill_secs": fill_secs,
                       "add": [{"answered": a, "accepted": b} for a, b in adds]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
