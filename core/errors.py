"""Errors the domain code raises, and the one JSON error body Berth answers with.

Domain modules raise ApiError subclasses; server.py turns them (and every Connexion, Flask
or routing error) into `{"status": "<reason phrase>", "message": "<what is wrong>"}`.
"""
import http


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PreconditionFailed(ApiError):
    status = 412


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})


class DependencyFailed(ApiError):
    status = 424


class NotImplementedYet(ApiError):
    status = 501


def reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def body(status: int, message: str) -> dict:
    return {"status": reason(status), "message": message}
