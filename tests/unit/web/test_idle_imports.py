"""A server worker does not import, at start-up, the libraries only a rare route or a task needs
(issue 18, idle memory: together ~10 MB in every worker). Their users import them where they are
used; the task fork server preloads them for task processes (tasks.fork_server.LAZY_LIBRARIES)."""
import json
import os
import subprocess
import sys

from tasks.fork_server import LAZY_LIBRARIES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LAZY = ("ldap3", "acme", "josepy", "OpenSSL", "lexicon", "tldextract", "dns", "segno")

PROBE = """
import json, sys
from web.app import create_app
create_app()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_app_a_worker_serves_imports_none_of_the_lazy_libraries(tmp_path):
    # A fresh interpreter: this test process has imported who knows what already.
    env = dict(os.environ, BERTH_DATA_DIR=str(tmp_path), BERTH_DATABASE_URL="")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "connexion" in imported     # the probe did build the app
    assert imported.isdisjoint(LAZY), sorted(imported & set(LAZY))


def test_the_fork_server_preloads_them_for_task_processes(db):
    from tasks import fork_server
    preload = fork_server._body_modules()
    for library in LAZY_LIBRARIES:
        assert library in preload
    assert {name.split(".")[0] for name in LAZY_LIBRARIES} >= {"ldap3", "acme", "lexicon", "dns"}
