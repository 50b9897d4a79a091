"""addons.images against the real engine: with no registry reachable, the services' images are
built once from Debian packages and found by tag afterwards."""
import time

import containers
from addons import image_recipe, images


def test_unpullable_image_falls_back_to_the_local_build_and_a_second_call_is_instant(berth_env, monkeypatch):
    # Failed pulls are remembered per process: forget those of tests that ran before in this one.
    monkeypatch.setattr(images, "_failed_pulls", set())
    first = []
    started = time.monotonic()
    image = images.ensure_image("postgresql", first.append)
    first_took = time.monotonic() - started
    assert image == f"berth-local/postgresql:{image_recipe.recipe_hash()}"
    assert any("Cannot pull image registry.invalid/berth-test/postgres:15" in line for line in first)
    print(f"\nfirst ensure_image took {first_took:.1f} s")

    # One build carries all three servers: the other services find their images without a build
    others = []
    assert images.ensure_image("mysql", others.append) == images.local_image("mysql")
    assert images.ensure_image("redis", others.append) == images.local_image("redis")
    assert not any("Building" in line for line in others), others

    # and the failed pulls are remembered: no registry is asked again
    again = []
    started = time.monotonic()
    for service in images.SERVICES:
        assert images.ensure_image(service, again.append) == images.local_image(service)
    assert time.monotonic() - started < 1
    assert again == []


def test_local_images_follow_the_official_interface(berth_env):
    client = containers.client()
    for service, entrypoint, cmd, port in (("postgresql", "berth-postgres-entrypoint", ["postgres"], "5432/tcp"),
                                           ("mysql", "berth-mariadb-entrypoint", ["mariadbd"], "3306/tcp"),
                                           ("redis", "berth-redis-entrypoint", ["redis-server"], "6379/tcp")):
        config = client.api.inspect_image(images.build_local(service))["Config"]
        assert config["Entrypoint"] == [f"/usr/local/bin/{entrypoint}"]
        assert config["Cmd"] == cmd
        assert port in config["ExposedPorts"]
    # documentation and translations were trimmed, the client tools are there
    script = ("ls /usr/share/doc | wc -l; "
              "for p in psql pg_dump pg_restore mariadb mariadb-dump redis-cli setpriv; do command -v $p; done")
    out = client.containers.run(images.local_image("redis"), ["sh", "-c", script], remove=True).decode()
    lines = out.split()
    assert lines[0] == "0"
    assert len(lines) == 8, out


def test_a_build_waits_for_the_one_under_way_and_a_new_recipe_reuses_the_root_filesystem(berth_env, monkeypatch):
    import fcntl
    import os
    import threading

    from core import data_paths
    images.build_local("redis")                                  # the root filesystem is there
    # a changed entrypoint names new images; they are derived from the same root filesystem
    monkeypatch.setitem(image_recipe.FILES, "usr/local/bin/berth-test-marker", ("#!/bin/sh\n", 0o755))
    monkeypatch.setattr(images, "_remove_stale_images", lambda base: None)   # other tests' images stay
    tag = images.local_image("redis")
    assert not containers.image_exists(tag)
    lines, done = [], []
    os.makedirs(data_paths.addon_image_builds(), exist_ok=True)
    lock_path = os.path.join(data_paths.addon_image_builds(), "build.lock")
    with open(lock_path, "a") as held:                           # "another process" is building
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: done.append(images.build_local("redis", lines.append)))
        worker.start()
        time.sleep(1)
        assert done == [] and any("Waiting for another build" in line for line in lines)
    worker.join(timeout=120)
    try:
        assert done == [tag]
        assert not any("debootstrap" in line for line in lines), lines
        out = containers.client().containers.run(tag, ["ls", "/usr/local/bin/berth-test-marker"], remove=True)
        assert out.strip() == b"/usr/local/bin/berth-test-marker"
    finally:
        for service in images.SERVICES:
            containers.remove_image(images.local_image(service))
