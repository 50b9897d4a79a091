"""The API client behind every `berth` command but the server ones: where the server and token
come from, one request function, and errors a person can act on.

Server and token: `--server`/`--token` options, else BERTH_SERVER/BERTH_TOKEN (read by click,
for scripts), else the file `berth login` wrote (`~/.config/berth/cli.json`, mode 0600; another
path with `--config` or BERTH_CLI_CONFIG).
"""
import contextlib
import json
import os

import click
import httpx

API = "/api/v1"


def default_config_path() -> str:
    return os.path.join(click.get_app_dir("berth"), "cli.json")


def read_saved(path: str) -> dict:
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            saved = json.load(f)
        if isinstance(saved, dict):
            return saved
    return {}


def save(path: str, values: dict) -> None:
    """Write the login file readable by its owner only (it holds a token)."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(values, f, indent=2)


def normalise_server(server: str) -> str:
    server = server.strip().rstrip("/")
    if not server.startswith(("http://", "https://")):
        server = "https://" + server
    return server


class ApiError(click.ClickException):
    """A failed call, worded for a person; exits 1 (click prints `Error: <message>`)."""


class Client:
    def __init__(self, server: str | None, token: str | None, insecure: bool = False, timeout: float = 60):
        if not server:
            raise ApiError("No server: run `berth login <server>` or set BERTH_SERVER")
        self.server = normalise_server(server)
        self.token = token
        self.http = httpx.Client(base_url=self.server + API, verify=not insecure, timeout=timeout)

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def call(self, method: str, path: str, *, json_body=None, params=None, content=None, files=None,
             headers=None, raw: bool = False):
        """One request; the decoded JSON (or the response when `raw`), or ApiError."""
        try:
            response = self.http.request(method, path, json=json_body, params=_clean(params), files=files,
                                         content=content, headers=self._headers(headers))
        except httpx.TransportError as e:
            raise ApiError(f"Cannot reach {self.server}: {e}. Is Berth running there? "
                           "Check the address with `berth login <server>`.") from None
        if response.status_code >= 400:
            raise error_for(response)
        if raw:
            return response
        return response.json() if response.content else {}

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, params=None, headers=None, timeout=None):
        """A streaming response (logs, downloads); raises ApiError for an error status."""
        try:
            with self.http.stream(method, path, params=_clean(params), headers=self._headers(headers),
                                  timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response)
                yield response
        except httpx.TransportError as e:
            raise ApiError(f"Cannot reach {self.server}: {e}") from None

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, json_body={} if body is None else body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, json_body={} if body is None else body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def _clean(params):
    return {k: v for k, v in (params or {}).items() if v is not None} or None


def error_for(response: httpx.Response) -> ApiError:
    try:
        message = response.json().get("message") or response.reason_phrase
    except ValueError:
        message = response.text.strip()[:300] or response.reason_phrase
    status = response.status_code
    if status == 401:
        return ApiError(f"{message}. Your login has expired or the token is not valid: run `berth login`.")
    if status == 403:
        return ApiError(f"Not allowed: {message}")
    if status == 400:
        return ApiError(f"Invalid input: {message}")
    if status == 404:
        return ApiError(f"Not found: {message}")
    if status == 429:
        return ApiError(f"Too many requests: {message}. Try again in a minute.")
    return ApiError(f"{message} (HTTP {status})")


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))
