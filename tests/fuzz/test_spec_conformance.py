"""The spec tells the truth: every operation of the published spec, fuzzed with schemathesis
against a real Berth server (SQLite), with a valid token of each role.

For every answer: no server error (5xx) unless it is a 501 the operation declares, the status
code is one the operation declares, and the body matches the schema declared for that status
(and the declared content type). Generation is positive (schema-valid requests) and bounded:
EXAMPLES examples per operation for a role that may call it, REFUSED_EXAMPLES for one that may
not (it answers 403 before the request is even validated), derandomized so a failure repeats.

`GET /cloudron/logout` revokes the token it is called with: it runs with a fresh token of the
role for every example, and after each operation the role's token must still work, so no
operation can silently turn the rest of the run into a walk of 401s.
"""
import os
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support.harness import Api, BerthServer
from web.spec import load_spec, operations

ROLES = ("owner", "admin", "usermanager", "user")
PASSWORD = "Fuzz-pass-1"
EXAMPLES = int(os.environ.get("BERTH_FUZZ_EXAMPLES", "10"))
REFUSED_EXAMPLES = 1
REVOKES_ITS_TOKEN = {"handlers.cloudron.logout"}

# Operations not fuzzed, each with why; each is exercised by the API tests named.
EXCLUDED = {
    "handlers.settings.set_backup_config":
        "probes the storage it is given: a generated config would create folders anywhere on this "
        "machine or connect to generated hosts (tests/api/test_backups.py, test_secrets_at_rest.py)",
}

SPEC_OPERATIONS = [(op_id, method, path, frozenset(op.get("x-roles") or []))
                   for op_id, method, path, op in operations(load_spec())]


class Fuzz:
    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        self.tokens = {}
        self.schema = None
        self.examples = 0

    def setup(self):
        api = Api(self.server.api)
        r = api.post("/cloudron/activate", json={"username": "owner", "password": PASSWORD,
                                                 "email": "owner@example.com"})
        assert r.status_code == 201, r.text
        self.tokens["owner"] = r.json()["token"]
        owner = api.with_token(self.tokens["owner"])
        for role in ROLES[1:]:
            name = f"fuzz-{role}"
            r = owner.post("/users", json={"username": name, "email": f"{name}@example.com",
                                           "password": PASSWORD, "role": role})
            assert r.status_code == 201, r.text
            r = api.post("/cloudron/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[role] = r.json()["token"]
        # The spec as the server publishes it (what Swagger UI and clients read).
        self.schema = schemathesis.openapi.from_url(self.server.api + "/swagger.json")
        return self

    def fresh_token(self, role):
        r = Api(self.server.api, self.tokens[role]).post("/tokens", json={"name": "fuzz-throwaway"})
        assert r.status_code == 201, r.text
        return r.json()["accessToken"]

    def token_works(self, role):
        r = Api(self.server.api, self.tokens[role]).get("/profile")
        return r.status_code == 200


@pytest.fixture(scope="module")
def fuzz():
    server = BerthServer(env={"BERTH_RATE_LIMIT": "0"}).start()
    started = time.monotonic()
    try:
        f = Fuzz(server).setup()
        yield f
        print(f"\nfuzz: {len(SPEC_OPERATIONS) - len(EXCLUDED)} operations x {len(ROLES)} roles, "
              f"{f.examples} examples in {time.monotonic() - started:.0f}s")
    finally:
        server.cleanup()


def no_server_error(ctx, response, case):
    """5xx only as a 501 the operation declares (an operation not built yet says so)."""
    status = response.status_code
    if status >= 500 and not (status == 501 and "501" in case.operation.responses.status_codes):
        raise AssertionError(f"server error {status}: {response.text[:300]}")


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("op", [o for o in SPEC_OPERATIONS if o[0] not in EXCLUDED],
                         ids=[f"{m} {p}" for i, m, p, _ in SPEC_OPERATIONS if i not in EXCLUDED])
def test_operation_answers_as_the_spec_says(fuzz, op, role):
    op_id, method, path, roles = op
    operation = fuzz.schema[path][method]
    allowed = "public" in roles or role in roles

    @settings(max_examples=EXAMPLES if allowed else REFUSED_EXAMPLES, derandomize=True, deadline=None,
              database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case):
        token = fuzz.fresh_token(role) if op_id in REVOKES_ITS_TOKEN else fuzz.tokens[role]
        # schemathesis fills the spec's security parameters with generated strings: drop them,
        # every example runs with exactly the role's token (bad credentials: tests/api/test_roles.py).
        for where, name in ((case.query, "access_token"), (case.headers, "x-api-key"),
                            (case.headers, "Authorization")):
            if where:
                where.pop(name, None)
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(session=fuzz.session, headers=headers, timeout=30)
        fuzz.examples += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()
    assert fuzz.token_works(role), f"{method} {path} revoked the {role}'s token"
