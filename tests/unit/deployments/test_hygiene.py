"""Which built images the hygiene removes (deployments.hygiene.choose, pure)."""
from containers.image_cleanup import BuiltImage
from deployments.hygiene import choose


def image(app, n, tags=None):
    return BuiltImage(id=f"sha256:{app}-{n}", tags=tuple(tags if tags is not None else [f"berth-build/{app}:{n}"]),
                      app_id=app, deployment=n, created=1000 + n)


def names(images):
    return sorted(i.id.split(":")[1] for i in images)


def test_keeps_the_newest_n_per_app_and_removes_older():
    images = [image("a", n) for n in range(1, 7)] + [image("b", n) for n in (10, 11)]
    doomed = choose(images, keep=3, needed={}, container_images=set(), installed={"a", "b"})
    assert names(doomed) == ["a-1", "a-2", "a-3"]


def test_needed_images_and_container_images_stay_whatever_their_age():
    images = [image("a", n) for n in range(1, 7)]
    doomed = choose(images, keep=2, needed={"a": {"berth-build/a:1"}}, container_images={"sha256:a-2"},
                    installed={"a"})
    assert names(doomed) == ["a-3", "a-4"]


def test_needed_by_image_id_counts_too_and_untagged_old_builds_go():
    images = [image("a", 1, tags=[]), image("a", 2, tags=[]), image("a", 3)]
    doomed = choose(images, keep=1, needed={"a": {"sha256:a-1"}}, container_images=set(), installed={"a"})
    assert names(doomed) == ["a-2"]


def test_images_of_uninstalled_apps_go_unless_a_container_uses_them():
    images = [image("gone", 1), image("gone", 2)]
    doomed = choose(images, keep=3, needed={}, container_images={"sha256:gone-2"}, installed={"a"})
    assert names(doomed) == ["gone-1"]


def test_keep_zero_leaves_only_what_is_needed():
    images = [image("a", n) for n in range(1, 4)]
    doomed = choose(images, keep=0, needed={"a": {"berth-build/a:3"}}, container_images=set(), installed={"a"})
    assert names(doomed) == ["a-1", "a-2"]


def test_schedule_is_registered_once_with_a_resolvable_action(db):
    from deployments import hygiene
    from models.tasks import Schedule
    from tasks import registry
    hygiene.register()
    hygiene.register()
    [row] = Schedule.select().where(Schedule.name == hygiene.SCHEDULE)
    assert row.action == hygiene.ACTION and registry.action(row.action) is hygiene.run
