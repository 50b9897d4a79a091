"""The container switch of a deploy (deployments/rollout.py): the new version runs beside the
app's container under a second name, and once it is healthy and nginx proxies to it, it takes the
app's own name (`berth-<id>`) and the old one goes.

Renames are instant and keep the container running, so every other part of Berth (which finds an
app's container by its name) sees either the old or the new one, never none for longer than
between two renames.
"""
from containers.engine import container_name, engine, find, remove_container, stop_container


def next_name(app_id: str) -> str:
    """The name of the new version while it starts beside the running one."""
    return container_name(app_id) + "-next"


def old_name(app_id: str) -> str:
    """The name the replaced version has between the switch and its removal."""
    return container_name(app_id) + "-old"


def exists(name: str) -> bool:
    return find(name) is not None


def running(name: str) -> bool:
    container = find(name)
    return container is not None and container.status == "running"


def rename(name: str, new_name: str) -> None:
    container = find(name)
    if container is None:
        return
    with engine(f"Cannot rename container {name}"):
        container.rename(new_name)


stop = stop_container  # by name: the old or the new version of a deploy


def start(name: str) -> None:
    container = find(name)
    if container is None:
        return
    with engine(f"Cannot start container {name}"):
        container.start()


def remove(name: str) -> None:
    remove_container(name)


def promote(app_id: str) -> None:
    """The new version takes the app's name; the old one is renamed aside (remove it with
    `remove(old_name(app_id))` once nginx no longer sends it requests)."""
    remove_container(old_name(app_id))       # a leftover of an interrupted deploy
    rename(container_name(app_id), old_name(app_id))
    rename(next_name(app_id), container_name(app_id))
