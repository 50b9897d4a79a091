"""Deployment records: one row per build or image change of an app (models.deployments).

The image hygiene (deployments/hygiene.py) asks here which images an app still needs; the
routes list and show the rows. Secrets of a source (git token, deploy key) are never stored: the
row keeps `source` with them masked (core.masking.MASK), the task gets them sealed.
"""
from core.errors import NotFound
from core.masking import MASK
from models import iso, utcnow
from models.deployments import STATES, Deployment
from models.tasks import Task

SECRET_FIELDS = ("token", "deployKey")
IMAGE_REPOSITORY = "berth-build"     # built images are berth-build/<app id>:<build number>


def build_tag(app_id: str, number: int) -> str:
    """The tag of an image Berth builds for deployment number `number` of the app."""
    return f"{IMAGE_REPOSITORY}/{app_id.lower()}:{number}"


def masked(source: dict) -> dict:
    """`source` as stored and shown: secrets replaced by MASK when set, left out when not."""
    shown = {}
    for key, value in source.items():
        if key in SECRET_FIELDS:
            if value:
                shown[key] = MASK
        else:
            shown[key] = value
    return shown


def next_number(app_id: str) -> int:
    last = Deployment.select(Deployment.number).where(Deployment.app == app_id).order_by(
        Deployment.number.desc()).limit(1).scalar()
    return (last or 0) + 1


def create(app_id: str, source: dict, actor_source: dict | None, rollback_of: int | None = None,
           image: str | None = None, manifest: dict | None = None) -> Deployment:
    """A new deployment in state `building` with the app's next build number (inserted with a
    retry: two requests at once both reading the same last number get a unique-key error once)."""
    for _ in range(5):
        try:
            return Deployment.create(app=app_id, number=next_number(app_id), source=masked(source),
                                     state="building", source_actor=actor_source, rollback_of=rollback_of,
                                     image=image, manifest=manifest,
                                     manifest_version=(manifest or {}).get("version"))
        except Exception as exc:  # noqa: BLE001 - peewee.IntegrityError on either database
            if "unique" not in str(exc).lower() and "duplicate" not in str(exc).lower():
                raise
    raise RuntimeError("could not pick a build number")


def get(app_id: str, deployment_id: int | str) -> Deployment:
    try:
        number = int(deployment_id)
    except (TypeError, ValueError):
        raise NotFound("No such deployment") from None
    if not 0 < number < 2**31:       # the id column is a 32-bit integer on PostgreSQL
        raise NotFound("No such deployment")
    return Deployment.get_or_raise(NotFound("No such deployment"),
                                   (Deployment.app == app_id) & (Deployment.id == number))


def by_id(deployment_id: int) -> Deployment:
    return Deployment.get_by_id(deployment_id)


def list_for_app(app_id: str) -> list[Deployment]:
    """The app's deployments, newest first."""
    return list(Deployment.select().where(Deployment.app == app_id).order_by(Deployment.number.desc()))


def set_state(deployment_id: int, state: str, **fields: object) -> None:
    if state not in STATES:
        raise ValueError(f"unknown deployment state {state!r}")
    if state in ("live", "failed", "rolled-back"):
        fields.setdefault("finish_time", utcnow())
    Deployment.update(state=state, **fields).where(Deployment.id == deployment_id).execute()


def update(deployment_id: int, **fields: object) -> None:
    Deployment.update(**fields).where(Deployment.id == deployment_id).execute()


def live(app_id: str) -> Deployment | None:
    """The deployment serving now: the newest `live` one."""
    return (Deployment.select().where((Deployment.app == app_id) & (Deployment.state == "live"))
            .order_by(Deployment.number.desc()).first())


def _ended_unfinished(rows: list[Deployment]) -> None:
    """A deployment still `building`/`deploying` whose task has ended (killed, server crash,
    timeout) never will finish: shown as `failed` with the task's reason. Only shown so: a GET
    writes nothing."""
    busy = {row.task_id: row for row in rows if row.state in ("building", "deploying") and row.task_id}
    if not busy:
        return
    for task in Task.select().where(Task.id.in_(list(busy))):
        if not task.active and not task.pending:
            row = busy[task.id]
            row.state = "failed"
            row.reason = (task.error or {}).get("message") or "the deploy task ended without finishing"


def listing(app_id: str) -> list[dict]:
    """The app's deployments as the API shows them, newest first."""
    current = live(app_id)
    rows = list_for_app(app_id)
    _ended_unfinished(rows)
    return [to_dict(row, current.id if current else None) for row in rows]


def shown(app_id: str, deployment_id: int | str) -> dict:
    current = live(app_id)
    row = get(app_id, deployment_id)
    _ended_unfinished([row])
    return to_dict(row, current.id if current else None)


def images_in_use(app_id: str) -> set[str]:
    """Images the app's deployments still need: the live one's and any being built or deployed
    (their image may be mid-build). The hygiene keeps these whatever its count says."""
    rows = Deployment.select(Deployment.image, Deployment.state).where(
        (Deployment.app == app_id) & Deployment.image.is_null(False))
    current = live(app_id)
    needed = {r.image for r in rows if r.state in ("building", "deploying")}
    if current is not None and current.image:
        needed.add(current.image)
    return needed


def to_dict(row: Deployment, current_id: int | None = None) -> dict:
    """The API's shape of a deployment (camelCase, as the rest of Berth's answers); `current_id`:
    the id of the deployment the app runs now (live())."""
    return {
        "id": str(row.id), "appId": row.app_id, "buildNumber": row.number, "source": row.source,
        "commit": row.commit, "image": row.image, "manifestVersion": row.manifest_version,
        "state": row.state, "reason": row.reason, "taskId": str(row.task_id) if row.task_id else None,
        "rollbackOf": str(row.rollback_of) if row.rollback_of else None,
        "current": current_id is not None and row.id == current_id,
        "creationTime": iso(row.creation_time), "finishTime": iso(row.finish_time) if row.finish_time else None,
        "by": {k: v for k, v in (row.source_actor or {}).items() if k in ("userId", "username")},
    }
