"""The body rule of the Cloudron API for created and empty answers, checked on every answer the API
tests receive (tests/api/conftest.py): a 201 carries a JSON object, a 204 carries nothing."""
import json

import requests


def check(response: requests.Response) -> None:
    """AssertionError naming the request when `response` breaks the rule."""
    where = f"{response.request.method} {response.request.path_url}"
    if response.status_code == 201:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise AssertionError(f"{where} answered 201 without a JSON body: {response.content[:200]!r}") from None
        assert isinstance(body, dict), f"{where} answered 201 with {type(body).__name__}, not a JSON object"
    elif response.status_code == 204:
        assert response.content == b"", f"{where} answered 204 with a body: {response.content[:200]!r}"


def checking_send(original):
    """requests.Session.send that checks every answer it returns."""
    def send(self, request, **kwargs):
        response = original(self, request, **kwargs)
        if response.status_code in (201, 204):
            check(response)
        return response
    return send
