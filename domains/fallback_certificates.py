"""The fallback certificate of each domain: a self-signed one Berth makes for the domain and
`*.domain`, unless the admin uploaded one (`fallbackCertificate`). The key is kept in the
database (the source of truth) and in nginx's files (reverse_proxy.certificate_files, a copy),
and never answered through the API.
"""
import certificates
import reverse_proxy
from core.errors import BadRequest, NotFound
from domains import hostnames
from models import Domain
from reverse_proxy import certificate_files as files


def choose(domain: str, body: dict, current: Domain | None = None) -> tuple[str, str, bool]:
    """(cert, key, generated) for the domain: the uploaded pair (checked), the current one when
    the request does not mention it, or a fresh self-signed one (new domain, or null = reset)."""
    if "fallbackCertificate" in body:
        pair = body["fallbackCertificate"]
        if pair is not None:
            if not isinstance(pair, dict):
                raise BadRequest("must be an object with cert and key", "fallbackCertificate")
            cert, key = certificates.validate_pair(pair.get("cert"), pair.get("key"), domain)
            return cert, key, False
    elif current is not None:
        return current.fallback_cert, current.fallback_key, current.fallback_generated
    if current is not None and current.fallback_generated:
        return current.fallback_cert, current.fallback_key, True
    cert, key = certificates.generate_self_signed(domain)
    return cert, key, True


def certificate_files(hostname: str) -> tuple[str, str]:
    """(cert path, key path) nginx should use for `hostname`: its domain's fallback certificate,
    written to <data dir>/certs/ if the files are missing or stale. A self-signed certificate close
    to its end is replaced first. NotFound when no domain covers the hostname."""
    dom = hostnames.domain_for_host(hostname)
    if dom is None:
        raise NotFound(f"No domain of this Berth covers {hostname}")
    renew = certificates.RENEW_BEFORE_DAYS
    if dom.fallback_generated and certificates.expires_within(dom.fallback_cert, renew):
        dom.fallback_cert, dom.fallback_key = certificates.generate_self_signed(dom.domain)
        dom.save()
    cert_path, key_path, _ = files.write_files(dom.domain, dom.fallback_cert, dom.fallback_key)
    return cert_path, key_path


def install(dom: Domain, previous: tuple[str, str] | None = None) -> None:
    """Put the domain's certificate where nginx reads it; a running proxy reloads, and if nginx
    rejects the files the previous ones are put back (then the error is raised).

    This reloads nginx from the request, on purpose for now: the request answers whether nginx
    took the certificate, and puts the old files back if not. Queueing it would turn a refused
    upload into a 201 followed by a failed task."""
    _, _, changed = files.write_files(dom.domain, dom.fallback_cert, dom.fallback_key)
    if not changed:
        return
    try:
        reverse_proxy.reload()
    except reverse_proxy.ProxyError:
        if previous:
            files.write_files(dom.domain, *previous)
        else:
            files.remove_files(dom.domain)
        raise


def remove(domain: str) -> None:
    files.remove_files(domain)
