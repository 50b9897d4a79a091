"""The certificate choice and renewal bookkeeping of domains.acme_orders on a real (SQLite) database
and data dir, and the HTTP-01 answers nginx is given (reverse_proxy.acme_challenges). The ACME
round trips themselves are in tests/api/test_certificates.py (against pebble)."""
import os
import tempfile
import time

import pytest

import domains
from core import config
from domains import acme_orders
from eventlog import Actor
from models import migrations, open_database
from reverse_proxy import acme_challenges
from reverse_proxy import certificate_files as cert_files
from support.certs import make_cert

DOMAIN = "le.example.test"


@pytest.fixture(scope="module")
def data_dir():
    folder = tempfile.mkdtemp(prefix="berth-acme-")
    previous = config._current
    cfg = config.load({"BERTH_DATA_DIR": folder})
    config.use(cfg)
    open_database(cfg.database_url)
    migrations.migrate()
    domains.add_domain(Actor(), {"domain": DOMAIN, "provider": "noop", "config": {},
                                 "tlsConfig": {"provider": "letsencrypt-staging"}})
    domains.add_domain(Actor(), {"domain": "plain.example.test", "provider": "noop", "config": {}})
    yield folder
    config.use(previous)


def test_lookup_prefers_user_then_ordered_then_fallback(data_dir):
    host = f"app.{DOMAIN}"
    fallback = domains.fallback_certificates.certificate_files(host)
    assert acme_orders.certificate_files(host) == fallback          # nothing ordered yet
    cert_files.write_files(f"acme_{host}", *make_cert([host], days=90))
    assert acme_orders.certificate_files(host) == cert_files.paths(f"acme_{host}")
    cert_files.write_files(f"user_{host}", *make_cert([host], days=90))
    assert acme_orders.certificate_files(host) == cert_files.paths(f"user_{host}")
    # an ordered certificate on a domain that is not (or no longer) on Let's Encrypt is not served
    plain = "app.plain.example.test"
    cert_files.write_files(f"acme_{plain}", *make_cert([plain], days=90))
    assert acme_orders.certificate_files(plain) == domains.fallback_certificates.certificate_files(plain)


def test_expired_ordered_certificate_falls_back(data_dir):
    host = f"old.{DOMAIN}"
    cert_files.write_files(f"acme_{host}", *make_cert([host], days=-1, starts_in_days=-2))
    assert acme_orders.certificate_files(host) == domains.fallback_certificates.certificate_files(host)
    assert acme_orders.due([host]) == [host]


def test_failed_orders_back_off_doubling_up_to_a_day(data_dir):
    host = f"failing.{DOMAIN}"
    acme_orders.record_failure(host, "no")
    now = time.time()
    assert acme_orders.in_backoff(host, now) and not acme_orders.in_backoff(host, now + 3601)
    assert acme_orders.due([host], respect_backoff=True) == [] and acme_orders.due([host]) == [host]
    for _ in range(10):
        acme_orders.record_failure(host, "no")
    assert acme_orders.in_backoff(host, now + 23 * 3600) and not acme_orders.in_backoff(host, now + 24 * 3600 + 5)
    acme_orders.clear_failure(host)
    assert not acme_orders.in_backoff(host)


def test_renewal_check_over_1000_certificates_takes_under_a_second(data_dir):
    soon, later = make_cert(["x"], days=10), make_cert(["x"], days=80)
    names = [f"h{i}.{DOMAIN}" for i in range(1000)]
    for i, host in enumerate(names):       # same PEMs: what is timed is the check, not key making
        cert_files.write_files(f"acme_{host}", *(soon if i % 4 == 0 else later))
    started = time.perf_counter()
    due = acme_orders.due(names)
    took = time.perf_counter() - started
    assert sorted(due) == sorted(names[::4])
    assert took < 1.0, f"renewal check over 1000 certificates took {took:.2f}s"


def test_acme_token_with_nginx_syntax_cannot_reach_the_configuration(data_dir):
    with pytest.raises(ValueError):
        acme_challenges.put(data_dir, 'x" "y"; } server { listen 1', "x.y")
    with pytest.raises(ValueError):
        acme_challenges.put(data_dir, "tok", 'tok.a"; } include /etc/shadow; #')
    with pytest.raises(ValueError):      # a key authorization must be for its own token
        acme_challenges.put(data_dir, "tok", "other.abc")
    # a file planted in the folder with such content is left out of nginx.conf
    os.makedirs(acme_challenges.folder(data_dir), exist_ok=True)
    with open(os.path.join(acme_challenges.folder(data_dir), "planted"), "w") as f:
        f.write('planted.x"; } server { listen 9999; }')
    acme_challenges.put(data_dir, "good_token-1", "good_token-1.thumb")
    rendered = "\n".join(acme_challenges.render_map(data_dir))
    assert "planted" not in rendered and "9999" not in rendered
    assert '"/.well-known/acme-challenge/good_token-1" "good_token-1.thumb";' in rendered
    acme_challenges.remove(data_dir, "good_token-1")
    assert "good_token-1" not in "\n".join(acme_challenges.render_map(data_dir))


def test_renewal_schedule_queues_a_task_only_when_something_is_due(data_dir):
    from domains import task_bodies
    from models.tasks import Task
    from reverse_proxy import Proxy
    before = Task.select().count()
    task_bodies.renewal_check()                     # no vhost serves anything yet
    assert Task.select().count() == before
    proxy = Proxy(data_dir, 1, 2)
    os.makedirs(proxy.sites, exist_ok=True)
    spec = proxy.spec("a1", f"fresh.{DOMAIN}", 8080)
    with open(proxy.vhost_path("a1"), "w") as f:    # what the proxy records of a served app
        f.write(proxy.render_vhost(spec, acme_orders.certificate_files))
    task_bodies.renewal_check()
    queued = list(Task.select().where(Task.id > 0).order_by(Task.id.desc()).limit(1))
    assert Task.select().count() == before + 1
    assert queued[0].type == "renewcerts" and queued[0].body == "certs.renew"
