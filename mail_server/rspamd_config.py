"""rspamd's local configuration for one Berth mail server: one milter (the proxy worker scanning
by itself) that scores incoming mail, lets the spam allow list through, and DKIM-signs outgoing
mail.

rspamd starts from Debian's /etc/rspamd/rspamd.conf with LOCAL_CONFDIR pointing here (local.d/
and override.d/), RUNDIR/DBDIR under <data dir>/mail/rspamd, and the milter socket in Postfix's
private folder. Its workers run as _rspamd, which cannot reach into the 0700 data dir, so nothing
they read at scan time may be a file there: the DKIM keys and the allow list are written into the
configuration as static maps, which the root main process reads before it forks the workers.
The custom spam rules (`spamCustomConfig`, SpamAssassin syntax as in Cloudron) go to rspamd's
spamassassin module, which also compiles its rule files at load time.
"""
import json
import os

from mail_server import maps
from mail_server.layout import Layout

# Compiled regular expressions of Debian's rule set (Hyperscan): the same for every instance and
# slow to make (20-60 s), so one cache outside the data dirs serves them all. Nothing of an
# instance's mail or configuration goes there.
HS_CACHE = "/var/cache/berth-mail/rspamd-hyperscan"


def _ucl(value: object) -> str:
    """A UCL value: JSON strings and lists are valid UCL."""
    return json.dumps(value)


def render(layout: Layout, conf_dir: str, snapshot: dict, dkim_keys: dict[str, str], selector: str,
           resolver: str) -> dict[str, str]:
    """{relative path under the rspamd folder: text}. `dkim_keys` is {domain: base64 DER key};
    `conf_dir` is the configuration folder these files go to."""
    acl = snapshot.get("spamAcl") or {}
    allow = [maps.glob_regexp(p) for p in acl.get("allowlist", []) or []]
    files = {}
    # The proxy worker is the milter; nothing else listens (no controller, no normal worker:
    # the proxy scans by itself), so nothing binds a TCP port several instances could share.
    files["override.d/worker-proxy.inc"] = (
        f'bind_socket = "{layout.private}/rspamd-milter mode=0666";\n'
        "milter = yes;\nself_scan = yes;\ncount = 1;\ntimeout = 60s;\n"
        'upstream "local" { default = yes; self_scan = yes; }\n')
    files["override.d/worker-normal.inc"] = "enabled = false;\n"
    files["override.d/worker-controller.inc"] = "enabled = false;\n"
    files["override.d/worker-fuzzy.inc"] = "enabled = false;\ncount = -1;\n"
    options = ['local_addrs = ["127.0.0.0/8", "::1"];', f'hs_cache_dir = "{HS_CACHE}";']
    if resolver:
        options.append(f"dns {{ nameserver = [{_ucl(resolver)}]; timeout = 1s; retransmits = 1; }}")
    files["override.d/options.inc"] = "\n".join(options) + "\n"
    files["override.d/logging.inc"] = 'type = "console";\nlevel = "notice";\n'
    # No Redis here: greylisting would only defer mail; spam is rejected at 15, tagged at 6.
    files["override.d/actions.conf"] = "reject = 15;\nadd_header = 6;\ngreylist = null;\nrewrite_subject = null;\n"
    files["override.d/milter_headers.conf"] = 'use = ["x-spamd-bar", "x-spam-level", "authentication-results"];\n'
    files["local.d/dkim_signing.conf"] = (
        f"selector = {_ucl(selector)};\n"
        "allow_username_mismatch = true;\nallow_hdrfrom_mismatch = false;\nuse_esld = false;\n"
        "sign_authenticated = true;\nsign_local = true;\ntry_fallback = false;\n"
        f"signing_table = {_ucl(sorted(f'*@{d} {d}' for d in dkim_keys) or ['*@berth.invalid none'])};\n"
        f"key_table = {_ucl(sorted(f'{d} {d}:{selector}:{k}' for d, k in dkim_keys.items()) or ['none none'])};\n")
    multimap = []
    if allow:
        multimap.append("BERTH_ALLOWLIST {\n  type = \"from\";\n  regexp = true;\n  prefilter = true;\n"
                        f"  action = \"accept\";\n  map = {_ucl(['/' + r + '/' for r in allow])};\n"
                        "  description = \"Sender on the spam allow list\";\n}\n")
    files["local.d/multimap.conf"] = "".join(multimap)
    custom = snapshot.get("spamCustomConfig") or ""
    files["spamassassin.cf"] = custom if custom.endswith("\n") or not custom else custom + "\n"
    files["local.d/spamassassin.conf"] = (
        f'ruleset = {_ucl(os.path.join(conf_dir, "rspamd", "spamassassin.cf"))};\n' if custom.strip() else "")
    return files
