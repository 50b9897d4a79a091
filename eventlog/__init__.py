"""The event log: who changed what, from where. Secrets never go in `data`."""
import dataclasses
import json
import uuid

import peewee

from models import Event


@dataclasses.dataclass(frozen=True)
class Actor:
    user_id: str | None = None
    username: str | None = None
    role: str | None = None
    ip: str | None = None

    def source(self) -> dict:
        return {"userId": self.user_id, "username": self.username, "ip": self.ip}


SYSTEM = Actor(username="berth")  # Berth itself: schedules, health checks, reconciliation

SENSITIVE = {"password", "newPassword", "token", "accessToken", "secret", "key", "resetToken"}


def record(action: str, actor: Actor, **data: object) -> None:
    clean = {k: v for k, v in data.items() if k not in SENSITIVE}
    Event.create(id=str(uuid.uuid4()), action=action, source=actor.source(), data=clean)


def list_events(page: int, per_page: int, action: str | None = None, actions: str | None = None,
                search: str | None = None) -> list:
    """Events newest first. `actions` is Cloudron's comma separated list ("app.install, app.update":
    the dashboard puts spaces after the commas), `action` one more; an event matches any of them
    exactly. `search` is a case-insensitive substring of the action, the source or the data."""
    query = Event.select().order_by(Event.creation_time.desc(), Event.id)
    wanted = [a.strip() for a in (actions or "").split(",") if a.strip()]
    if action and action.strip():
        wanted.append(action.strip())
    if wanted:
        query = query.where(Event.action.in_(wanted))
    if search:
        query = query.where(_text_search(search))
    return list(query.paginate(page, per_page))


def _text_search(term: str) -> peewee.Node:
    """`term` anywhere in the action or in the stored JSON text of source and data.

    Those columns hold JSON as written by json.dumps (ASCII only: `"`, `\\` and non-ASCII are
    escaped), so the term is matched in its JSON-escaped form; LIKE wildcards in it are escaped, so
    `%` or `_` match only themselves. LOWER on both sides makes it case-insensitive the same way on
    SQLite and PostgreSQL (SQLite's LIKE folds ASCII only, PostgreSQL's not at all). A non-ASCII
    letter is stored as its code point, so its case is matched as sent, all lower or all upper."""
    patterns = {_like_pattern(json.dumps(variant)[1:-1].lower())
                for variant in (term, term.lower(), term.upper())}
    condition = None
    for column in (Event.action, Event.source, Event.data):
        for pattern in sorted(patterns):
            like = peewee.NodeList((peewee.fn.LOWER(column), peewee.SQL("LIKE"),
                                    peewee.Value(pattern, converter=False), peewee.SQL(f"ESCAPE '{_ESCAPE}'")))
            condition = like if condition is None else (condition | like)
    return condition


_ESCAPE = "!"


def _like_pattern(text: str) -> str:
    for special in (_ESCAPE, "%", "_"):
        text = text.replace(special, _ESCAPE + special)
    return f"%{text}%"


def get_event(event_id: str) -> Event | None:
    return Event.get_or_none(Event.id == event_id)
