"""Vendor providers through dns-lexicon against a local HTTP server speaking a small, faithful part
of each vendor's API: Cloudflare (v4), DigitalOcean (v2) and Vultr (v2). The provider is the one
Berth builds from a domain's config (registry.create), with only the API base URL pointed here;
every request lexicon makes is recorded, so the tests check the request shape (auth headers,
paths, bodies) as well as Berth's outcome, and that a refusal comes back as a DnsError with the
vendor's own words and never the credentials."""

import pytest

import dns_providers
from support.fake_vendor_api import Vendor, serving
from support.harness import free_port

ZONE = "vendor.test"
TOKEN = "good-token-0123456789"


class Cloudflare(Vendor):
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(403, {"success": False, "errors": [
                {"code": 9109, "message": "Invalid access token"}], "messages": [], "result": None})
        if path == "/zones":
            return self._send(200, {"success": True, "result": [{"id": "zone1", "name": ZONE}],
                                    "result_info": {"page": 1, "total_pages": 1}})
        if path == "/zones/zone1/dns_records" and method == "GET":
            found = [r for r in self.records if r["type"] == query.get("type", [r["type"]])[0]
                     and r["name"] == query.get("name", [r["name"]])[0]]
            return self._send(200, {"success": True, "result": found, "result_info": {"page": 1, "total_pages": 1}})
        if path == "/zones/zone1/dns_records" and method == "POST":
            if body["content"] == "203.0.113.99":
                return self._send(400, {"success": False, "errors": [
                    {"code": 9005, "message": "Content for A record is invalid."}]})
            record = {"id": f"r{next(self.ids)}", "type": body["type"], "name": body["name"],
                      "content": body["content"], "ttl": body.get("ttl", 1)}
            self.records.append(record)
            return self._send(200, {"success": True, "result": record})
        if path.startswith("/zones/zone1/dns_records/") and method == "DELETE":
            self.records[:] = [r for r in self.records if r["id"] != path.rsplit("/", 1)[1]]
            return self._send(200, {"success": True, "result": {"id": path.rsplit("/", 1)[1]}})
        self._send(404, {"success": False, "errors": [{"code": 7003, "message": "No route for that URI"}]})


class DigitalOcean(Vendor):
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
        if path == f"/domains/{ZONE}" and method == "GET":
            return self._send(200, {"domain": {"name": ZONE, "ttl": 1800}})
        if path == f"/domains/{ZONE}/records" and method == "GET":
            return self._send(200, {"domain_records": self.records, "links": {}, "meta": {"total": len(self.records)}})
        if path == f"/domains/{ZONE}/records" and method == "POST":
            record = {"id": next(self.ids), "type": body["type"], "name": body["name"], "data": body["data"],
                      "ttl": body["ttl"]}
            self.records.append(record)
            return self._send(201, {"domain_record": record})
        if path.startswith(f"/domains/{ZONE}/records/") and method == "DELETE":
            self.records[:] = [r for r in self.records if str(r["id"]) != path.rsplit("/", 1)[1]]
            return self._send(204)
        self._send(404, {"id": "not_found", "message": "The resource you were accessing could not be found."})


class Vultr(Vendor):
    def route(self, method, path, query, body):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"error": "Invalid API token.", "status": 401})
        meta = {"total": 1, "links": {"next": "", "prev": ""}}
        if path == "/domains":
            return self._send(200, {"domains": [{"domain": ZONE}], "meta": meta})
        if path == f"/domains/{ZONE}/records" and method == "GET":
            return self._send(200, {"records": self.records, "meta": meta})
        if path == f"/domains/{ZONE}/records" and method == "POST":
            record = {"id": f"v{next(self.ids)}", "type": body["type"], "name": body["name"], "data": body["data"],
                      "ttl": body.get("ttl", 300), "priority": 0}
            self.records.append(record)
            return self._send(201, {"record": record})
        if path.startswith(f"/domains/{ZONE}/records/") and method == "DELETE":
            self.records[:] = [r for r in self.records if r["id"] != path.rsplit("/", 1)[1]]
            return self._send(204)
        self._send(404, {"error": "Not found", "status": 404})


VENDORS = {"cloudflare": Cloudflare, "digitalocean": DigitalOcean, "vultr": Vultr}


@pytest.fixture(params=sorted(VENDORS))
def api(request):
    with serving(request.param, VENDORS[request.param]) as served:
        yield served


def make(name, endpoint, token=TOKEN):
    p = dns_providers.create(name, ZONE, {"token": token, "tokenType": "ApiToken"})
    p._api_endpoint = endpoint  # the one thing a test changes: where the vendor API lives
    return p


def test_records_round_trip_with_the_vendors_request_shape(api):
    name, handler, endpoint = api
    p = make(name, endpoint)
    p.verify()
    p.upsert_records("web", "A", ["192.0.2.1"])
    assert p.get_records("web", "A") == ["192.0.2.1"]
    p.upsert_records("web", "A", ["192.0.2.2"])          # moved: the old value is deleted
    assert p.get_records("web", "A") == ["192.0.2.2"]
    assert len(handler.records) == 1
    p.delete_records("web", "A")
    assert p.get_records("web", "A") == [] and handler.records == []

    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in handler.requests)
    posts = [r for r in handler.requests if r["method"] == "POST"]
    assert [p["path"] for p in posts] == [{"cloudflare": "/zones/zone1/dns_records"}.get(
        name, f"/domains/{ZONE}/records")] * 2
    first = posts[0]["body"]
    if name == "cloudflare":    # Cloudflare takes full names; DigitalOcean and Vultr names in the zone
        assert (first["type"], first["name"], first["content"], first["ttl"]) == ("A", f"web.{ZONE}", "192.0.2.1", 300)
    else:
        assert (first["type"], first["name"], first["data"]) == ("A", "web", "192.0.2.1")
        assert name != "digitalocean" or first["ttl"] == 300
    assert any(r["method"] == "DELETE" for r in handler.requests)


WORDS = {"cloudflare": "403 Forbidden: Invalid access token",
         "digitalocean": "401 Unauthorized: Unable to authenticate you",
         "vultr": "401 Unauthorized: Invalid API token."}


def test_bad_token_is_a_dns_error_with_the_vendors_words_and_no_secret(api):
    name, handler, endpoint = api
    wrong = "wrong-token-SECRET-9876"
    with pytest.raises(dns_providers.DnsError) as e:
        make(name, endpoint, wrong).verify()
    assert str(e.value) == f"{name}: {WORDS[name]}"
    assert wrong not in str(e.value)


@pytest.mark.parametrize("api", ["cloudflare"], indirect=True)
def test_vendor_refusing_a_record_is_a_dns_error(api):
    name, handler, endpoint = api
    with pytest.raises(dns_providers.DnsError, match="400 Bad Request: Content for A record is invalid."):
        make(name, endpoint).upsert_records("web", "A", ["203.0.113.99"])


def test_unreachable_api_is_a_dns_error(api):
    name, _, _ = api
    with pytest.raises(dns_providers.DnsError, match="could not reach the API"):
        make(name, f"http://127.0.0.1:{free_port()}").verify()
