"""Every operation of openapi.yaml, called with every kind of credential, answers as the
spec's `x-roles` say: no/bad/expired token -> 401, a role not listed -> 403, a listed role ->
neither (501 "not implemented yet" is fine), a read-only token -> 403 for anything but GET,
public operations -> never 401/403, and nothing ever -> 500.

Each check is its own test, named `<backend>-<METHOD> <path>-<credential>`, so a failure
names the operation and the credential. Path parameters are filled with placeholders that
cannot match real objects, so no request changes anything that a later check relies on.

The walk sends ~2000 requests per backend with few tokens, so it runs on its own servers
with the per-token rate limit switched off (BERTH_RATE_LIMIT=0); the limit itself is
tested elsewhere.
"""
import os
import secrets
import time
from dataclasses import dataclass

import pytest
import requests
import yaml

from support.harness import ROOT, Api, BerthServer

ROLES = ("owner", "admin", "mailmanager", "usermanager", "user")
CREDENTIALS = ("no-token", "bad-token", "expired-token", "read-only-token") + ROLES
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
PASSWORD = "Pass-word-1"
EXPIRING_MS = 1500


def _load_spec():
    with open(os.path.join(ROOT, "openapi.yaml")) as f:
        return yaml.safe_load(f)


SPEC = _load_spec()


@dataclass(frozen=True)
class Operation:
    method: str        # "GET"
    path: str          # "/users/{userId}" as written in the spec
    url_path: str      # the path with placeholders filled in
    roles: frozenset   # x-roles; {"public"} means no token needed
    operation: dict

    @property
    def public(self):
        return self.roles == {"public"}

    @property
    def streaming(self):
        return self.path.endswith("/logstream")

    def __str__(self):
        return f"{self.method} {self.path}"


def _resolve(parameter):
    ref = parameter.get("$ref")
    if ref is None:
        return parameter
    assert ref.startswith("#/parameters/"), ref
    return SPEC["parameters"][ref.split("/")[-1]]


def _placeholder(parameter):
    """A value of the right shape that names no existing object."""
    if parameter.get("enum"):
        return str(parameter["enum"][0])
    if parameter.get("type") == "integer":
        return "999999"
    if parameter.get("format") == "path":
        return "x"
    return "nonexistent-0"


def _operations():
    for path, item in SPEC["paths"].items():
        shared = [_resolve(p) for p in item.get("parameters", [])]
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            url_path = path
            for parameter in shared + [_resolve(p) for p in op.get("parameters", [])]:
                if parameter["in"] == "path":
                    url_path = url_path.replace("{%s}" % parameter["name"], _placeholder(parameter))
            yield Operation(method.upper(), path, url_path, frozenset(op.get("x-roles") or ()), op)


OPERATIONS = list(_operations())


def test_every_operation_declares_who_may_call_it():
    """The walk below is only as good as the declarations it checks against."""
    assert len(OPERATIONS) > 200
    problems = []
    for op in OPERATIONS:
        if "{" in op.url_path:
            problems.append(f"{op}: path parameter without a declaration")
        if not op.roles:
            problems.append(f"{op}: no x-roles")
        elif op.public:
            if op.operation.get("security") != []:
                problems.append(f"{op}: x-roles [public] but no `security: []`")
        else:
            if not op.roles <= set(ROLES):
                problems.append(f"{op}: unknown roles {sorted(op.roles - set(ROLES))}")
            if "owner" not in op.roles:
                problems.append(f"{op}: the owner may not call it")
            if op.operation.get("security") == []:
                problems.append(f"{op}: `security: []` but x-roles {sorted(op.roles)}")
    assert not problems, "\n".join(problems)


# ---- servers and credentials ------------------------------------------------------------------

class Walk:
    """One server and a token for every credential state of the walk."""

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()
        self.tokens = {}          # credential -> token sent (None: no Authorization header)
        self.expired_at_ms = 0

    def setup(self):
        api = Api(self.server.api)
        r = api.post("/cloudron/activate", json={"username": "owner", "password": "Owner-pass-1",
                                                 "email": "owner@example.com"})
        assert r.status_code == 201, r.text
        owner = api.with_token(r.json()["token"])
        # The expiring token first, so that setting up the rest uses up most of its life.
        self.expired_at_ms = int(time.time() * 1000) + EXPIRING_MS
        r = owner.post("/tokens", json={"name": "expiring", "expiresAt": self.expired_at_ms})
        assert r.status_code == 201, r.text
        self.tokens["expired-token"] = r.json()["accessToken"]
        r = owner.post("/tokens", json={"name": "read-only", "scope": {"*": "r"}})
        assert r.status_code == 201, r.text
        self.tokens["read-only-token"] = r.json()["accessToken"]
        self.tokens["owner"] = owner.token
        for role in ROLES[1:]:
            name = f"walk-{role}"
            r = owner.post("/users", json={"username": name, "email": f"{name}@example.com",
                                           "password": PASSWORD, "role": role})
            assert r.status_code == 201, r.text
            r = api.post("/cloudron/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[role] = r.json()["token"]
        self.tokens["no-token"] = None
        self.tokens["bad-token"] = secrets.token_hex(32)  # the shape of a real token
        # Make sure the expiring token really is expired before anything uses it.
        wait = (self.expired_at_ms + 100) / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        return self

    def throwaway_token(self, credential):
        """A fresh token of the same user and scope as `credential`, for calls that revoke it."""
        if credential == "read-only-token":
            creator, scope = self.tokens["owner"], {"*": "r"}
        else:
            creator, scope = self.tokens[credential], {"*": "rw"}
        r = Api(self.server.api, creator).post("/tokens", json={"name": "throwaway", "scope": scope})
        assert r.status_code == 201, r.text
        return r.json()["accessToken"]

    def call(self, op, credential):
        token = self.tokens[credential]
        if op.path == "/cloudron/logout" and (credential in ROLES or credential == "read-only-token"):
            token = self.throwaway_token(credential)  # logout revokes the token it is called with
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        kwargs = {} if op.method == "GET" else {"json": {}}
        url = self.server.api + op.url_path
        if op.streaming:
            r = self.http.request(op.method, url, headers=headers, stream=True, timeout=(5, 5), **kwargs)
            if r.headers.get("content-type", "").startswith("application/json"):
                _ = r.content  # an error answer: finite, and its message is wanted
            r.close()  # a stream may never end; only its status matters
            return r
        return self.http.request(op.method, url, headers=headers, timeout=(5, 30), **kwargs)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def walk(request):
    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres").new_database()
    server = BerthServer(database_url=database_url, env={"BERTH_RATE_LIMIT": "0"}).start()
    try:
        yield Walk(server).setup()
    finally:
        server.cleanup()


# ---- the walk ---------------------------------------------------------------------------------

def _expected(op, credential):
    """(status the answer must have, or None; statuses it must not have)."""
    if op.public and op.operation.get("x-signature-auth"):
        return 401, ()   # authenticated by a signature of its body, which no call here carries
    if op.public:
        return None, (401, 403)
    if credential in ("no-token", "bad-token", "expired-token"):
        return 401, ()
    if credential == "read-only-token":
        if op.method != "GET" or "owner" not in op.roles:
            return 403, ()
        return None, (401, 403)
    if credential in op.roles:
        return None, (401, 403)
    return 403, ()


def _describe(op, credential, r):
    text = r.text[:500] if r.headers.get("content-type", "").startswith("application/json") else ""
    return f"{op} (sent {op.method} {op.url_path}) as {credential}: {r.status_code} {text}"


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_operation_answers_as_its_roles_say(walk, op, credential):
    r = walk.call(op, credential)
    what = _describe(op, credential, r)
    assert r.status_code != 500, what
    # The request must have reached the operation, not fallen through the router.
    assert r.status_code != 405, what
    if r.status_code == 404:
        assert "No such route" not in r.text, what
    must_be, must_not_be = _expected(op, credential)
    if must_be is not None:
        assert r.status_code == must_be, what
    assert r.status_code not in must_not_be, what
    if r.status_code in (401, 403):
        error = r.json()
        assert isinstance(error.get("status"), str) and isinstance(error.get("message"), str), what
