"""Time as Berth stores it (naive UTC datetimes) and as the Cloudron API writes it."""
import datetime


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def iso(value: datetime.datetime | None) -> str | None:
    """ISO-8601 UTC string as the Cloudron API emits it (None stays None)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
