"""More vendor providers through dns-lexicon against a local HTTP server speaking a small, faithful
part of each vendor's API (same approach as test_vendor_providers.py): Hetzner (Cloud DNS API),
Linode (v4), Porkbun (v3 JSON), Gandi (LiveDNS REST v5), Name.com (v4), netcup (CCP JSON API) and
GoDaddy (v1). The provider is the one Berth builds from a domain's config (registry.create), with
only the API base URL pointed here. Each fake keeps its zone as flat (name, type, value) records
and answers in the vendor's own shapes; every request is recorded, so the tests check auth, paths
and bodies, and that a refusal comes back as a DnsError in the vendor's words without a secret.

Both an A and an AAAA record live on the same name throughout: moving or deleting one must leave
the other (gandi's record id is the rrset name, which would take both; see lexicon_provider)."""
import base64
import json

import pytest

import dns_providers
from support.fake_vendor_api import Vendor, serving
from support.harness import free_port

TOKEN, KEY, SECRET, PASSWORD = "good-token-0123456789", "good-key-0123", "good-secret-4567", "good-pass-89"
ZONE = "vendor.test"
GODADDY_ZONE = "vendortest.com"   # lexicon's godaddy finds the registered domain through the public suffix list


class Hetzner(Vendor):
    """Hetzner Cloud DNS (api.hetzner.cloud/v1/zones): rrsets, changed through actions."""
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"error": {"code": "unauthorized", "message": "unable to authenticate"}})
        if path == f"/{ZONE}":
            return self._send(200, {"zone": {"id": 42, "name": ZONE, "ttl": 3600}})
        done = {"action": {"id": next(self.ids), "status": "success", "command": "x"}}
        if path == "/42/rrsets":
            rtype, name = query.get("type", [None])[0], query.get("name", [None])[0]
            sets = {}
            for r in self.find(name, rtype):
                sets.setdefault((r["name"], r["type"]), {"name": r["name"] or "@", "type": r["type"], "ttl": r["ttl"],
                                                         "records": []})["records"].append({"value": r["value"]})
            return self._send(200, {"rrsets": list(sets.values()),
                                    "meta": {"pagination": {"page": 1, "last_page": 1, "next_page": None}}})
        parts = path.split("/")         # /42/rrsets/<name>/<type>[/actions/<verb>]
        if len(parts) >= 5 and parts[2] == "rrsets":
            name, rtype = parts[3], parts[4]
            if method == "DELETE":
                self.records[:] = [r for r in self.records if (r["name"], r["type"]) != (name, rtype)]
                return self._send(201, done)
            verb = parts[6] if len(parts) > 6 else ""
            values = [v["value"] for v in body["records"]]
            if verb == "add_records":
                for v in values:
                    self.add(name, rtype, v, body.get("ttl") or 3600)
                return self._send(201, done)
            if verb == "remove_records":
                self.records[:] = [r for r in self.records
                                   if not ((r["name"], r["type"]) == (name, rtype) and r["value"] in values)]
                return self._send(201, done)
        self._send(404, {"error": {"code": "not_found", "message": "not found"}})


class Linode(Vendor):
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"errors": [{"reason": "Invalid Token"}]})
        page = {"page": 1, "pages": 1}
        if path == "/domains" and method == "GET":
            wanted = json.loads(self.headers.get("X-Filter") or "{}").get("domain")
            found = [{"id": 7, "domain": ZONE, "type": "master"}] if wanted in (None, ZONE) else []
            return self._send(200, {"data": found, "results": len(found), **page})
        if path == "/domains/7/records" and method == "GET":
            data = [{"id": r["id"], "name": r["name"], "type": r["type"], "target": r["value"],
                     "ttl_sec": r["ttl"]} for r in self.records]
            return self._send(200, {"data": data, "results": len(data), **page})
        if path == "/domains/7/records" and method == "POST":
            r = self.add(body["name"], body["type"], body["target"], body.get("ttl_sec", 0))
            return self._send(200, {"id": r["id"], "name": r["name"], "type": r["type"], "target": r["value"]})
        if path.startswith("/domains/7/records/") and method == "DELETE":
            self.records[:] = [r for r in self.records if str(r["id"]) != path.rsplit("/", 1)[1]]
            return self._send(200, {})
        self._send(404, {"errors": [{"reason": "Not found"}]})


class Porkbun(Vendor):
    """Every call is a POST whose JSON body carries both keys."""
    def route(self, method, path, query, body):
        body = body or {}
        if (body.get("apikey"), body.get("secretapikey")) != (KEY, SECRET):
            return self._send(400, {"status": "ERROR", "message": "Invalid API key. (002)"})
        if path == "/ping":
            return self._send(200, {"status": "SUCCESS", "yourIp": "127.0.0.1"})
        if path == f"/dns/retrieve/{ZONE}":
            return self._send(200, {"status": "SUCCESS", "records": [
                {"id": str(r["id"]), "name": f"{r['name']}.{ZONE}" if r["name"] else ZONE, "type": r["type"],
                 "content": r["value"], "ttl": str(r["ttl"]), "prio": "0", "notes": ""} for r in self.records]})
        if path == f"/dns/create/{ZONE}":
            r = self.add(body["name"], body["type"], body["content"], int(body.get("ttl", 600)))
            return self._send(200, {"status": "SUCCESS", "id": r["id"]})
        if path.startswith(f"/dns/delete/{ZONE}/"):
            self.records[:] = [r for r in self.records if str(r["id"]) != path.rsplit("/", 1)[1]]
            return self._send(200, {"status": "SUCCESS"})
        self._send(404, {"status": "ERROR", "message": "Invalid endpoint."})


class Gandi(Vendor):
    """LiveDNS: one rrset per (name, type) at /domains/<zone>/records/<name>/<type>."""
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"Apikey {TOKEN}":
            return self._send(401, {"code": 401, "message": "The server could not verify that you are authorized",
                                    "object": "HTTPUnauthorized", "cause": "Unauthorized"})
        if path == f"/domains/{ZONE}":
            return self._send(200, {"fqdn": ZONE, "automatic_snapshots": True})
        prefix = f"/domains/{ZONE}/records/"
        if path.startswith(prefix) and path.count("/") == 5:
            name, rtype = path[len(prefix):].split("/")
            name = "" if name == "@" else name
            mine = self.find(name, rtype)
            if method == "GET":
                if not mine:
                    return self._send(404, {"code": 404, "message": "Can't find the DNS record", "cause": "Not Found"})
                return self._send(200, {"rrset_name": name or "@", "rrset_type": rtype, "rrset_ttl": mine[0]["ttl"],
                                        "rrset_values": [r["value"] for r in mine]})
            if method in ("POST", "PUT"):
                self.records[:] = [r for r in self.records if r not in mine]
                for v in body["rrset_values"]:
                    self.add(name, rtype, v, body.get("rrset_ttl", 10800))
                return self._send(201, {"message": "DNS Record Created"})
            if method == "DELETE":
                self.records[:] = [r for r in self.records if r not in mine]
                return self._send(204)
        if path.startswith(prefix) and method == "DELETE":       # /records/<name>: every type of the name
            name = path[len(prefix):]
            self.records[:] = [r for r in self.records if r["name"] != name]
            return self._send(204)
        self._send(404, {"code": 404, "message": "Not found", "cause": "Not Found"})


class Namecom(Vendor):
    """HTTP Basic auth with the username and API token."""
    def route(self, method, path, query, body):
        expected = "Basic " + base64.b64encode(f"berth-user:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, {"message": "Unauthenticated"})
        if path == "/domains":
            return self._send(200, {"domains": [{"domainName": ZONE, "locked": True}]})
        if path == f"/domains/{ZONE}/records" and method == "GET":
            return self._send(200, {"records": [
                {"id": r["id"], "domainName": ZONE, "host": r["name"], "type": r["type"], "answer": r["value"],
                 "ttl": r["ttl"], "fqdn": f"{r['name']}.{ZONE}." if r["name"] else f"{ZONE}."}
                for r in self.records]})
        if path == f"/domains/{ZONE}/records" and method == "POST":
            r = self.add(body["host"], body["type"], body["answer"], body.get("ttl") or 300)
            return self._send(200, {"id": r["id"], "host": r["name"], "type": r["type"], "answer": r["value"]})
        if path.startswith(f"/domains/{ZONE}/records/") and method == "DELETE":
            self.records[:] = [r for r in self.records if str(r["id"]) != path.rsplit("/", 1)[1]]
            return self._send(200, {})
        self._send(404, {"message": "Not Found"})


class Netcup(Vendor):
    """One JSON endpoint; the action is in the body, errors are status "error" with HTTP 200."""
    def route(self, method, path, query, body):
        action, param = body["action"], body["param"]
        ok = {"status": "success", "statuscode": 2000, "shortmessage": "ok", "longmessage": "ok"}
        if action == "login":
            if (param.get("customernumber"), param.get("apikey"), param.get("apipassword")) != ("12345", KEY, PASSWORD):
                return self._send(200, {"status": "error", "statuscode": 4013, "shortmessage": "Validation Error.",
                                        "longmessage": "The given apikey or apipassword is invalid.",
                                        "responsedata": ""})
            return self._send(200, {**ok, "responsedata": {"apisessionid": "session-1"}})
        if param.get("apisessionid") != "session-1":
            return self._send(200, {"status": "error", "statuscode": 4001, "longmessage": "Session is invalid."})
        if action == "infoDnsZone":
            return self._send(200, {**ok, "responsedata": {"name": ZONE, "ttl": "86400"}})
        as_netcup = lambda r: {"id": str(r["id"]), "hostname": r["name"] or "@", "type": r["type"],  # noqa: E731
                               "priority": "0", "destination": r["value"], "deleterecord": False, "state": "yes"}
        if action == "infoDnsRecords":
            return self._send(200, {**ok, "responsedata": {"dnsrecords": [as_netcup(r) for r in self.records]}})
        if action == "updateDnsRecords":
            for rec in param["dnsrecordset"]["dnsrecords"]:
                if rec.get("deleterecord"):
                    self.records[:] = [r for r in self.records if str(r["id"]) != rec["id"]]
                else:
                    self.add(rec["hostname"], rec["type"], rec["destination"], 86400)
            return self._send(200, {**ok, "responsedata": {"dnsrecords": [as_netcup(r) for r in self.records]}})
        self._send(200, {"status": "error", "statuscode": 4002, "longmessage": "Unknown action."})


class GoDaddy(Vendor):
    """Record sets are replaced whole with PUT; records have no ids."""
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"sso-key {KEY}:{SECRET}":
            return self._send(401, {"code": "UNABLE_TO_AUTHENTICATE", "message": "Unable to authenticate credentials"})
        base = f"/domains/{GODADDY_ZONE}"
        if path == base:
            return self._send(200, {"domainId": 1234, "domain": GODADDY_ZONE, "status": "ACTIVE"})
        if not path.startswith(base + "/records"):
            return self._send(404, {"code": "NOT_FOUND", "message": "Not found"})
        parts = path[len(base + "/records"):].strip("/").split("/")
        rtype = parts[0] or None
        name = (parts[1] if len(parts) > 1 else None)
        as_godaddy = lambda r: {"type": r["type"], "name": r["name"] or "@", "data": r["value"], "ttl": r["ttl"]}  # noqa: E731
        rel = None if name is None else ("" if name == "@" else name)
        if method == "GET":
            return self._send(200, [as_godaddy(r) for r in self.find(rel, rtype)])
        if method == "PUT":
            self.records[:] = [r for r in self.records if not (r["type"] == rtype and rel in (None, r["name"]))]
            for item in body:
                self.add("" if item["name"] == "@" else item["name"], rtype, item["data"], item.get("ttl", 3600))
            return self._send(200)
        if method == "DELETE":
            self.records[:] = [r for r in self.records if not (r["type"] == rtype and r["name"] == rel)]
            return self._send(204)
        self._send(404, {"code": "NOT_FOUND", "message": "Not found"})


# name -> (fake, config with the good credentials, the secret key to spoil, the vendor's refusal)
VENDORS = {
    "hetzner": (Hetzner, {"token": TOKEN}, "token", "401 Unauthorized: unable to authenticate"),
    "linode": (Linode, {"token": TOKEN}, "token", "401 Unauthorized: Invalid Token"),
    "porkbun": (Porkbun, {"apikey": KEY, "secretapikey": SECRET}, "secretapikey",
                "400 Bad Request: Invalid API key. (002)"),
    "gandi": (Gandi, {"token": TOKEN}, "token",
              "401 Unauthorized: The server could not verify that you are authorized"),
    "namecom": (Namecom, {"username": "berth-user", "token": TOKEN}, "token", "401 Unauthorized: Unauthenticated"),
    "netcup": (Netcup, {"customerNumber": "12345", "apiKey": KEY, "apiPassword": PASSWORD}, "apiPassword",
               "The given apikey or apipassword is invalid. (4013)"),
    "godaddy": (GoDaddy, {"apiKey": KEY, "apiSecret": SECRET}, "apiSecret",
                "401 Unauthorized: Unable to authenticate credentials"),
}
ENDPOINT_PATH = {"netcup": "/run/webservice/servers/endpoint.php?JSON"}


@pytest.fixture(params=sorted(VENDORS))
def api(request):
    with serving(request.param, VENDORS[request.param][0], ENDPOINT_PATH.get(request.param, "")) as served:
        yield served


def make(name, endpoint, **spoil):
    cfg = {**VENDORS[name][1], **spoil}
    p = dns_providers.create(name, GODADDY_ZONE if name == "godaddy" else ZONE, cfg)
    p._api_endpoint = endpoint  # the one thing a test changes: where the vendor API lives
    return p


def test_records_round_trip_with_the_vendors_request_shape(api):
    name, handler, endpoint = api
    p = make(name, endpoint)
    p.verify()
    p.upsert_records("web", "A", ["192.0.2.1"])
    p.upsert_records("web", "AAAA", ["2001:db8::1"])
    assert p.get_records("web", "A") == ["192.0.2.1"] and p.get_records("web", "AAAA") == ["2001:db8::1"]
    p.upsert_records("web", "A", ["192.0.2.2"])          # moved: the old value goes, the AAAA stays
    assert p.get_records("web", "A") == ["192.0.2.2"] and p.get_records("web", "AAAA") == ["2001:db8::1"]
    p.delete_records("web", "A")
    assert p.get_records("web", "A") == [] and p.get_records("web", "AAAA") == ["2001:db8::1"]
    p.delete_records("web", "AAAA")
    assert handler.records == []
    SHAPES[name](handler.requests)


def _writes(requests):
    return [r for r in requests if r["method"] != "GET"]


def _hetzner(requests):
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in requests)
    adds = [r for r in requests if r["path"].endswith("/actions/add_records")]
    assert adds[0]["path"] == "/42/rrsets/web/A/actions/add_records"
    assert adds[0]["body"] == {"ttl": 300, "records": [{"value": "192.0.2.1"}]}
    assert any(r["path"] == "/42/rrsets/web/A/actions/remove_records"
               and r["body"] == {"records": [{"value": "192.0.2.1"}]} for r in requests)


def _linode(requests):
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in requests)
    assert json.loads(requests[0]["headers"]["X-Filter"]) == {"domain": ZONE}
    posts = [r for r in requests if r["method"] == "POST"]
    assert posts[0]["path"] == "/domains/7/records"
    assert posts[0]["body"] == {"name": "web", "type": "A", "target": "192.0.2.1", "ttl_sec": 0}
    assert any(r["method"] == "DELETE" and r["path"].startswith("/domains/7/records/") for r in requests)


def _porkbun(requests):
    assert {r["method"] for r in requests} == {"POST"}
    assert all(r["body"]["apikey"] == KEY and r["body"]["secretapikey"] == SECRET for r in requests)
    creates = [r for r in requests if r["path"] == f"/dns/create/{ZONE}"]
    assert {k: creates[0]["body"][k] for k in ("type", "name", "content", "ttl")} == {
        "type": "A", "name": "web", "content": "192.0.2.1", "ttl": 300}
    assert any(r["path"].startswith(f"/dns/delete/{ZONE}/") for r in requests)


def _gandi(requests):
    assert all(r["headers"]["Authorization"] == f"Apikey {TOKEN}" for r in requests)
    posts = [r for r in requests if r["method"] == "POST"]
    assert posts[0]["path"] == f"/domains/{ZONE}/records/web/A"
    assert posts[0]["body"] == {"rrset_values": ["192.0.2.1"], "rrset_ttl": 300}
    # deletes name the type: never /records/web alone, which would take the AAAA too
    assert {r["path"] for r in requests if r["method"] == "DELETE"} == {
        f"/domains/{ZONE}/records/web/A", f"/domains/{ZONE}/records/web/AAAA"}


def _namecom(requests):
    basic = "Basic " + base64.b64encode(f"berth-user:{TOKEN}".encode()).decode()
    assert all(r["headers"]["Authorization"] == basic for r in requests)
    posts = [r for r in requests if r["method"] == "POST"]
    assert posts[0]["path"] == f"/domains/{ZONE}/records"
    assert posts[0]["body"] == {"type": "A", "host": "web", "answer": "192.0.2.1", "ttl": 300}


def _netcup(requests):
    assert {(r["method"], r["path"]) for r in requests} == {("POST", "/run/webservice/servers/endpoint.php")}
    logins = [r["body"] for r in requests if r["body"]["action"] == "login"]    # one per provider call
    assert logins[0]["param"] == {"customernumber": "12345", "apikey": KEY, "apipassword": PASSWORD}
    rest = [r["body"] for r in requests if r["body"]["action"] != "login"]
    assert all(b["param"]["apisessionid"] == "session-1" and "apipassword" not in b["param"] for b in rest)
    updates = [b["param"]["dnsrecordset"]["dnsrecords"] for b in rest if b["action"] == "updateDnsRecords"]
    assert updates[0] == [{"type": "A", "hostname": "web", "destination": "192.0.2.1"}]
    assert any(u and u[0].get("deleterecord") is True for u in updates)


def _godaddy(requests):
    assert all(r["headers"]["Authorization"] == f"sso-key {KEY}:{SECRET}" for r in requests)
    puts = [r for r in requests if r["method"] == "PUT"]
    assert puts[0]["path"] == f"/domains/{GODADDY_ZONE}/records/A/web"
    assert puts[0]["body"] == [{"type": "A", "name": "web", "data": "192.0.2.1", "ttl": 600}]  # GoDaddy's minimum


SHAPES = {"hetzner": _hetzner, "linode": _linode, "porkbun": _porkbun, "gandi": _gandi, "namecom": _namecom,
          "netcup": _netcup, "godaddy": _godaddy}


def test_refused_credentials_are_a_dns_error_with_the_vendors_words_and_no_secret(api):
    name, handler, endpoint = api
    _, _, key, words = VENDORS[name]
    wrong = "wrong-SECRET-9876"
    with pytest.raises(dns_providers.DnsError) as e:
        make(name, endpoint, **{key: wrong}).verify()
    assert str(e.value) == f"{name}: {words}"
    assert wrong not in str(e.value)


def test_unreachable_api_is_a_dns_error(api):
    name, _, _ = api
    with pytest.raises(dns_providers.DnsError, match="could not reach the API"):
        make(name, f"http://127.0.0.1:{free_port()}{ENDPOINT_PATH.get(name, '')}").verify()
