"""Ordering certificates from an ACME CA (RFC 8555) with the `acme` library.

Pure protocol work: this module knows neither nginx nor the database. Whoever orders passes
`publish(token, key_authorization)`, which must make http://<name>/.well-known/acme-challenge/<token>
answer the key authorization (Berth's nginx does, reverse_proxy.acme_challenges) and returns a
function that withdraws it again. Every failure comes out as AcmeError carrying the CA's own words
(the problem document's detail), which is what the task log and the notification show.

The `acme` library (with josepy and pyOpenSSL) is imported by the methods that talk to the CA:
orders run in task processes, and every server worker imports this module (through domains) for
its names and AcmeError only, so it need not carry the library while idle (issue 18, idle memory).
"""
import contextlib
import datetime
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

LETSENCRYPT_DIRECTORIES = {
    "letsencrypt-prod": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
USER_AGENT = "berth-acme"
ORDER_TIMEOUT_SECS = 120

# HTTP-01: publish(token, key authorization) -> withdraw()
Publisher = Callable[[str, str], Callable[[], None]]
# DNS-01: publish({record name: [TXT values]}) -> withdraw(); one call for the whole order, since a
# wildcard and its base name put two values in the same _acme-challenge record set.
DnsPublisher = Callable[[dict[str, list[str]]], Callable[[], None]]


class AcmeError(Exception):
    """The CA refused or could not be reached; the message is the CA's own detail."""


def new_account_key() -> str:
    """A fresh account key (RSA 2048: RS256 is the one algorithm every ACME CA accepts), PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_certificate_key() -> str:
    """The key of an ordered certificate (P-256: fast to make, accepted by every client), PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _problem(e: BaseException) -> str:
    """The CA's words for a failure of the acme library."""
    from acme import errors, messages
    if isinstance(e, errors.ValidationError):
        details = []
        for authzr in e.failed_authzrs:
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    detail = chall.error.detail or chall.error.typ
                    details.append(f"{authzr.body.identifier.value}: {detail}")
        return "; ".join(details) or str(e)
    if isinstance(e, messages.Error):
        return e.detail or e.description or str(e)
    if isinstance(e, errors.TimeoutError):
        return "the CA did not finish the order in time"
    return str(e) or type(e).__name__


class AcmeAccount:
    """One account (one key) at one CA directory."""

    def __init__(self, directory_url: str, account_key_pem: str, ca_bundle: str = "",
                 timeout: int = 30):
        import josepy
        from acme import client
        key = serialization.load_pem_private_key(account_key_pem.encode(), password=None)
        # verify_ssl is handed to requests as `verify`: a CA bundle path trusts a private CA (tests).
        self.net = client.ClientNetwork(josepy.JWKRSA(key=key), user_agent=USER_AGENT,
                                        verify_ssl=ca_bundle or True, timeout=timeout)
        try:
            directory = client.ClientV2.get_directory(directory_url, self.net)
        except Exception as e:  # noqa: BLE001 - network, TLS or JSON failure alike
            raise AcmeError(f"ACME directory {directory_url} unusable: {_problem(e)}") from e
        self.client = client.ClientV2(directory, self.net)
        self._registered = False

    def register(self) -> None:
        """Create the account, or find it again by its key (the CA answers 200 + Location)."""
        if self._registered:
            return
        from acme import errors, messages
        try:
            self.client.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        except errors.ConflictError as e:
            self.net.account = messages.RegistrationResource(uri=e.location, body=messages.Registration())
        except (errors.Error, messages.Error) as e:
            raise AcmeError(f"account registration refused: {_problem(e)}") from e
        self._registered = True

    def order(self, names: Iterable[str], publish: Publisher | None = None,
              timeout: int = ORDER_TIMEOUT_SECS, publish_dns: DnsPublisher | None = None) -> tuple[str, str]:
        """A certificate for `names` through HTTP-01 (`publish`) or DNS-01 (`publish_dns`, needed for
        a `*.` name); returns (full chain PEM, key PEM). Raises AcmeError with the CA's message
        when an authorization or the order fails."""
        from acme import challenges, crypto_util, errors, messages
        names = list(dict.fromkeys(n.lower() for n in names))
        kind = challenges.DNS01 if publish_dns is not None else challenges.HTTP01
        self.register()
        key_pem = new_certificate_key()
        csr = crypto_util.make_csr(key_pem.encode(), names)
        withdraw, answers, records = [], [], {}
        try:
            order = self.client.new_order(csr)
            for authzr in order.authorizations:
                if authzr.body.status == messages.STATUS_VALID:
                    continue    # the CA still remembers this name as ours
                name = authzr.body.identifier.value
                chall = next((c for c in authzr.body.challenges if isinstance(c.chall, kind)), None)
                if chall is None:
                    raise AcmeError(f"{name}: the CA offers no {kind.typ} challenge")
                response, validation = chall.response_and_validation(self.net.key)
                if kind is challenges.DNS01:
                    records.setdefault(chall.chall.validation_domain_name(name), []).append(validation)
                else:
                    withdraw.append(publish(chall.chall.encode("token"), validation))
                answers.append((chall, response))
            if records:
                withdraw.append(publish_dns(records))
            for chall, response in answers:
                self.client.answer_challenge(chall, response)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
            order = self.client.poll_and_finalize(order, deadline)
        except AcmeError:
            raise
        except (errors.Error, messages.Error) as e:
            raise AcmeError(_problem(e)) from e
        finally:
            for undo in withdraw:
                with contextlib.suppress(Exception):
                    undo()
        return order.fullchain_pem, key_pem
