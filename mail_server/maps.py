"""What the snapshot means for the MTA: the lookup tables Postfix reads (texthash files, loaded by
each daemon as root before it drops privileges, so they stay 0600 under the private data dir).

Every name that goes into a table is checked against a strict pattern first: a table line is
"key value", so an address with a space, a newline or a comma could otherwise add entries.
"""
import dataclasses
import ipaddress
import re

from mail_server.errors import MailServerError

ADDRESS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,253}$")
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN = re.compile(rf"^(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*$")
HOST = re.compile(r"^[A-Za-z0-9.:_-]{1,253}$")
BUILT_IN_RELAYS = {"cloudron-smtp", "", None}
NO_AUTH_RELAYS = {"external-smtp-noauth"}


def address(value: object, what: str = "address") -> str:
    if not isinstance(value, str) or not ADDRESS.match(value):
        raise MailServerError(f"mail server: invalid {what} {value!r}")
    return value.lower()


def domain(value: object) -> str:
    if not isinstance(value, str) or not DOMAIN.match(value):
        raise MailServerError(f"mail server: invalid domain {value!r}")
    return value.lower()


def glob_regexp(pattern: str) -> str:
    """A spam ACL entry as an anchored POSIX regexp: `*` is any run of characters; an entry
    without `@` is a domain (and its subdomains)."""
    pattern = pattern.strip().lower()
    if not pattern or re.search(r"[\s/]", pattern):
        raise MailServerError(f"mail server: invalid spam list entry {pattern!r}")
    body = re.escape(pattern).replace(r"\*", ".*")
    if "@" not in pattern:
        return f"^.*@(.*\\.)?{body}$"
    return f"^{body}$"


def _add_senders(senders: list[dict], owners: dict[str, list[str]], ours) -> None:
    """The snapshot's `senders` ([{address, logins}]: the apps' sendmail identities) into the
    sender-login table: those logins may send as that address."""
    for sender in senders:
        addr = address(sender["address"], "sender")
        if ours(addr):
            known = owners.setdefault(addr, [])
            known.extend(x for x in (address(x, "sender login") for x in sender.get("logins", [])) if x not in known)


@dataclasses.dataclass
class Tables:
    """The Postfix tables of one snapshot ({file name: text}) and what main.cf needs to know."""
    files: dict[str, str]
    lists: list[str]                      # restriction class names, one per members-only list
    relays: bool                          # some domain relays (SASL password map in use)


def _lines(pairs) -> str:
    return "".join(f"{k} {v}\n" for k, v in pairs)


def tables(snapshot: dict) -> Tables:
    """Build every table from the snapshot (see mail_server.apply for its shape)."""
    domains = [d for d in snapshot.get("domains", []) if d.get("enabled")]
    enabled = {domain(d["domain"]) for d in domains}

    def ours(addr: str) -> bool:
        return addr.split("@", 1)[1] in enabled

    mailboxes, inactive = [], []
    for m in snapshot.get("mailboxes", []):
        addr = address(m["address"], "mailbox")
        if ours(addr):
            (mailboxes if m.get("active", True) else inactive).append(addr)
    aliases = {}     # address -> [targets]: virtual_alias_maps (identity first, so catch-all skips mailboxes)
    for addr in mailboxes:
        aliases[addr] = [addr]
    owners = {addr: [addr] for addr in mailboxes}   # who may send as whom (mailFromValidation)
    for a in snapshot.get("aliases", []):
        addr, target = address(a["address"], "alias"), address(a["target"], "alias target")
        if ours(addr):
            aliases[addr] = [target]
            owners[addr] = [target]
    list_access, list_files, classes = [], {}, []
    for i, lst in enumerate(snapshot.get("lists", [])):
        addr = address(lst["address"], "list")
        if not ours(addr):
            continue
        members = [address(m, "list member") for m in lst.get("members", [])]
        if members:     # a list nobody is on has nowhere to deliver: unknown to the MTA
            aliases[addr] = members
        owners[addr] = members
        if lst.get("membersOnly"):
            name = f"list_{i}"
            classes.append(name)
            list_access.append((addr, name))
            list_files[f"{name}.senders"] = _lines((m, "OK") for m in members)
    _add_senders(snapshot.get("senders", []), owners, ours)
    for d in domains:
        name = domain(d["domain"])
        catch_all = [address(a, "catch-all address") for a in d.get("catchAll", []) or []]
        if catch_all:
            aliases["@" + name] = catch_all
        if d.get("mailFromValidation", True):
            # Known with no owner: an authenticated user may not send as an unknown address of it.
            owners.setdefault("@" + name, ["nobody-may-send-as-this"])
    files = {
        "domains": _lines((d, "OK") for d in sorted(enabled)),
        "mailboxes": _lines((m, "OK") for m in mailboxes),
        "aliases": _lines((k, ",".join(v)) for k, v in aliases.items()),
        "inactive": _lines((m, "REJECT mailbox is disabled") for m in inactive),
        "lists": _lines(list_access),
        "sender_owners": _lines((k, ",".join(v)) for k, v in owners.items() if v),
        **list_files,
    }
    acl = snapshot.get("spamAcl") or {}
    files["blocklist"] = "".join(f"/{glob_regexp(p)}/ REJECT sender is blocked\n"
                                 for p in acl.get("blocklist", []) or [])
    # /network/blocklist: clients refused at connect (a cidr table; entries are canonical networks
    # from the snapshot, re-checked here so a line can hold nothing else).
    files["client_blocklist"] = "".join(f"{n} REJECT client is blocked\n" for n in _networks(snapshot))
    transports, passwords = relay_tables(domains)
    files["sender_transports"] = transports
    files["relay_passwords"] = passwords
    return Tables(files, classes, bool(passwords))


def _networks(snapshot: dict) -> list[str]:
    try:
        return [str(ipaddress.ip_network(n, strict=False)) for n in snapshot.get("clientBlocklist") or []]
    except ValueError as e:
        raise MailServerError(f"mail server: invalid blocklist entry: {e}") from None


def snapshot_hostname(snapshot: dict) -> str:
    return domain(snapshot.get("hostname") or "localhost")


def relay_tables(domains: list[dict]) -> tuple[str, str]:
    """sender_dependent_default_transport_maps and smtp_sasl_password_maps lines: mail from a
    domain with an external relay leaves through it (implicit TLS on port 465, STARTTLS when
    offered elsewhere), with the relay's credentials."""
    transports, passwords = [], []
    for d in domains:
        relay = d.get("relay") or {}
        if relay.get("provider") in BUILT_IN_RELAYS:
            continue
        host, port = str(relay.get("host") or ""), int(relay.get("port") or 587)
        if not HOST.match(host) or not 0 < port < 65536:
            raise MailServerError(f"mail server: invalid relay {host!r}:{port} of {d['domain']}")
        transport = "relay_smtps" if port == 465 else "relay_smtp"
        nexthop = f"[{host}]:{port}"
        transports.append((f"@{domain(d['domain'])}", f"{transport}:{nexthop}"))
        if relay.get("provider") not in NO_AUTH_RELAYS and relay.get("username"):
            user, password = str(relay["username"]), str(relay.get("password") or "")
            if re.search(r"[\s:]", user) or re.search(r"[\r\n]", password):
                raise MailServerError(f"mail server: invalid relay credentials of {d['domain']}")
            # Keyed by sender domain (smtp_sender_dependent_authentication).
            passwords.append((f"@{domain(d['domain'])}", f"{user}:{password}"))
    return _lines(transports), _lines(passwords)
