"""Model -> JSON shapes of the API (field names and types as the seed defines them)."""
from models import iso


def event_json(e):
    return {"id": e.id, "action": e.action, "source": e.source, "data": e.data,
            "creationTime": iso(e.creation_time)}
