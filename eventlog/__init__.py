"""The event log: who changed what, from where. Secrets never go in `data`."""
import dataclasses
import uuid

from models import Event


@dataclasses.dataclass(frozen=True)
class Actor:
    user_id: str = None
    username: str = None
    role: str = None
    ip: str = None

    def source(self):
        return {"userId": self.user_id, "username": self.username, "ip": self.ip}


SYSTEM = Actor(username="berth")  # Berth itself: schedules, health checks, reconciliation

SENSITIVE = {"password", "newPassword", "token", "accessToken", "secret", "key", "resetToken"}


def record(action, actor, **data):
    clean = {k: v for k, v in data.items() if k not in SENSITIVE}
    Event.create(id=str(uuid.uuid4()), action=action, source=actor.source(), data=clean)


def list_events(page, per_page, action=None, actions=None, search=None):
    query = Event.select().order_by(Event.creation_time.desc(), Event.id)
    wanted = [a for a in (actions or "").split(",") if a]
    if action:
        wanted.append(action)
    if wanted:
        query = query.where(Event.action.in_(wanted))
    if search:
        query = query.where(Event.action.contains(search) | Event.source.contains(search)
                            | Event.data.contains(search))
    return list(query.paginate(page, per_page))


def get_event(event_id):
    return Event.get_or_none(Event.id == event_id)
