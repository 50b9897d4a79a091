"""A local SMTP server that keeps what it receives: the relay (with AUTH) and the outside world of
the mail tests. aiosmtpd in a thread on a free port of 127.0.0.1.

    sink = SmtpSink(username="relay-user", password="relay-pass").start()
    sink.relay("external-smtp")      # a MailRelay body pointing at it
    sink.wait_for(lambda m: "Invite" in m["Subject"])   # the parsed email.message.Message
    sink.stop()
"""
import email
import email.policy
import threading
import time

from support.harness import free_port, require


class SmtpSink:
    def __init__(self, username=None, password=None):
        self.username, self.password = username, password
        self.port = free_port()
        self.messages = []          # (envelope from, [rcpt], raw bytes, parsed message)
        self.logins = []            # (login, accepted)
        self._lock = threading.Lock()
        self.controller = None

    @staticmethod
    def available():
        try:
            import aiosmtpd  # noqa: F401
            return True
        except ImportError:
            return False

    def start(self):
        require("aiosmtpd (pip install aiosmtpd)", self.available())
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                raw = envelope.original_content or envelope.content
                message = email.message_from_bytes(raw, policy=email.policy.default)
                with sink._lock:
                    sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), raw, message))
                return "250 OK kept"

        def authenticator(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
            password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
            ok = (login, password) == (self.username, self.password)
            with self._lock:
                self.logins.append((login, ok))
            return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535

        kwargs = {}
        if self.username is not None:
            kwargs = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def relay(self, provider="external-smtp", **override):
        body = {"provider": provider, "host": "127.0.0.1", "port": self.port, "acceptSelfSignedCerts": True}
        if self.username is not None and provider != "external-smtp-noauth":
            body.update(username=self.username, password=self.password)
        return {**body, **override}

    def wait_for(self, match, timeout=20):
        """The first message (parsed) for which match(message) is true, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for _, _, _, message in self.messages:
                    if match(message):
                        return message
            time.sleep(0.1)
        raise AssertionError(f"no matching mail within {timeout}s; got {[m[3]['Subject'] for m in self.messages]}")

    def raw_of(self, message):
        with self._lock:
            return next(raw for _, _, raw, m in self.messages if m is message)

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
