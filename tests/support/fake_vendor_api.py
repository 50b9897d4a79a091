"""A local HTTP server playing a DNS vendor's API for the dns-lexicon providers' tests: the
subclass answers `route(method, path, query, body)` in the vendor's shapes, keeps the zone in
`records` and every request in `requests` (so tests check auth headers, paths and bodies)."""
import contextlib
import http.server
import itertools
import json
import threading
from urllib.parse import parse_qs, urlparse

from support.harness import free_port


class Vendor(http.server.BaseHTTPRequestHandler):
    records: list      # {"id", "name" (relative, "" for the apex), "type", "value", "ttl"} or the vendor's own
    requests: list
    ids = itertools.count(1)

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode()

    def _send(self, status, payload=None):
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        url = urlparse(self.path)
        body = self._body()
        self.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                              "headers": dict(self.headers), "body": body})
        self.route(self.command, url.path, parse_qs(url.query), body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def add(self, name, rtype, value, ttl=300):
        record = {"id": next(self.ids), "name": name, "type": rtype, "value": value, "ttl": ttl}
        self.records.append(record)
        return record

    def find(self, name=None, rtype=None):
        return [r for r in self.records if name in (None, r["name"]) and rtype in (None, r["type"])]


@contextlib.contextmanager
def serving(name, vendor_class, path=""):
    """Serve a fresh copy of `vendor_class` (own records and requests) on a free port; yields
    (name, handler class, endpoint URL)."""
    handler = type(name, (vendor_class,), {"records": [], "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield name, handler, f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
