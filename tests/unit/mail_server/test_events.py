"""Delivery events read from Postfix's log."""
import datetime

from mail_server import events

LOG = [
    'Dec 04 23:28:03 my postfix/smtpd[8035]: 4525D248032: client=localhost[127.0.0.1]',
    'Dec 04 23:28:03 my postfix/cleanup[8046]: 4525D248032: message-id=<m1@outside.test>',
    'Dec 04 23:28:04 my postfix/qmgr[5933]: 4525D248032: from=<bob@other.test>, size=380, nrcpt=1'
    ' (queue active)',
    'Dec 04 23:28:04 my postfix/lmtp[8233]: 4525D248032: to=<alice@example.com>,'
    ' relay=my[private/dovecot-lmtp], dsn=2.0.0, status=sent (250 2.0.0 Saved)',
    'Dec 04 23:29:00 my postfix/smtpd[8035]: NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550'
    ' 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox'
    ' table; from=<x@outside.test> to=<nobody@example.com> proto=ESMTP helo=<client.test>',
    'Dec 04 23:30:00 my postfix/cleanup[8046]: 77AA1248033: milter-reject: END-OF-MESSAGE from'
    ' localhost[127.0.0.1]: 5.7.1 Spam message rejected; from=<s@outside.test>'
    ' to=<alice@example.com> proto=ESMTP helo=<client.test>',
    'Dec 04 23:31:00 my postfix/relay/smtp[9000]: 88BB1248034: to=<far@away.test>, relay=none,'
    ' delay=1, status=bounced (host said: 550 no such user)',
    'not a postfix line',
]


def test_events_of_a_log():
    found = events.parse(LOG, now=datetime.datetime(2026, 12, 5))
    kinds = [(e["type"], e["from"], e["to"]) for e in found]
    assert kinds == [("received", "bob@other.test", None), ("delivered", "bob@other.test", "alice@example.com"),
                     ("rejected", "x@outside.test", "nobody@example.com"),
                     ("rejected", "s@outside.test", "alice@example.com"), ("bounced", None, "far@away.test")]
    assert found[1]["messageId"] == "m1@outside.test" and found[1]["detail"] == "250 2.0.0 Saved"
    assert "User unknown" in found[2]["detail"] and found[3]["detail"] == "5.7.1 Spam message rejected"
    assert found[0]["time"] == datetime.datetime(2026, 12, 4, 23, 28, 4).timestamp()


def test_a_line_from_december_read_in_january_is_last_year():
    found = events.parse(LOG[:3], now=datetime.datetime(2027, 1, 2))
    assert datetime.datetime.fromtimestamp(found[0]["time"]).year == 2026
