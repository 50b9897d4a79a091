"""Addon rules that need no server: names derived from app ids, Cloudron's variables, stored
credentials, the image recipe and the error the addons raise."""
import hashlib
import re
import uuid

import pytest

from addons import credentials, image_recipe, images, mysql, postgresql, redis, services
from addons.errors import AddonError
from core import errors

HEX = re.compile(r"^[0-9a-f]+$")


def test_database_names_are_cloudrons():
    app_id = "c6f6b2a4-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    assert postgresql.names(app_id) == ("dbc6f6b2a45d6e4f708a9b0c1d2e3f4a5b", "userc6f6b2a45d6e4f708a9b0c1d2e3f4a5b")
    assert mysql.name(app_id) == hashlib.md5(app_id.encode()).hexdigest()[:16]
    assert len(mysql.name(app_id)) == 16                      # MySQL's user name limit


@pytest.mark.parametrize("app_id", ["x'; DROP DATABASE postgres; --", 'a"b`c\\d', "../../etc", "ÅPP"])
def test_app_id_with_sql_metacharacters_never_reaches_sql(app_id):
    key = credentials.app_key(app_id)
    assert HEX.fullmatch(key) and len(key) == 32
    database, role = postgresql.names(app_id)
    assert HEX.fullmatch(database[2:]) and HEX.fullmatch(role[4:])
    assert HEX.fullmatch(mysql.name(app_id))
    sql = postgresql._create_sql(database, role, "pw", fresh=True) + mysql._create_sql(mysql.name(app_id), "pw")
    assert app_id not in sql


def test_passwords_are_quoted_as_literals_even_if_they_were_not_hex():
    assert postgresql._literal("it's") == "'it''s'"
    assert mysql._literal("a'b\\c") == "'a\\'b\\\\c'"
    password = credentials.new_password()
    assert HEX.fullmatch(password) and len(password) == 48
    assert credentials.new_password() != password


def test_environments_carry_exactly_cloudrons_variables():
    assert postgresql._env("db1", "user1", "pw", "postgresql") == {
        "CLOUDRON_POSTGRESQL_URL": "postgres://user1:pw@postgresql/db1", "CLOUDRON_POSTGRESQL_HOST": "postgresql",
        "CLOUDRON_POSTGRESQL_PORT": "5432", "CLOUDRON_POSTGRESQL_USERNAME": "user1",
        "CLOUDRON_POSTGRESQL_PASSWORD": "pw", "CLOUDRON_POSTGRESQL_DATABASE": "db1"}
    assert mysql._env("abc", "pw", "mysql") == {
        "CLOUDRON_MYSQL_URL": "mysql://abc:pw@mysql/abc", "CLOUDRON_MYSQL_HOST": "mysql", "CLOUDRON_MYSQL_PORT": "3306",
        "CLOUDRON_MYSQL_USERNAME": "abc", "CLOUDRON_MYSQL_PASSWORD": "pw", "CLOUDRON_MYSQL_DATABASE": "abc"}
    assert redis._env("pw", "redis-x") == {
        "CLOUDRON_REDIS_URL": "redis://redisuser:pw@redis-x", "CLOUDRON_REDIS_HOST": "redis-x",
        "CLOUDRON_REDIS_PORT": "6379", "CLOUDRON_REDIS_PASSWORD": "pw"}


def test_service_names():
    app_id = str(uuid.uuid4())
    assert services.kind("postgresql") == "postgresql" and services.kind(f"redis-{app_id}") == "redis"
    with pytest.raises(errors.NotFound):
        services.kind("mongodb")
    with pytest.raises(ValueError):
        services.redis_name("Bad Id/..")


def test_addon_error_names_the_addon_and_is_a_dependency_failure():
    error = AddonError("mysql", "the service did not accept connections within 180 s")
    assert isinstance(error, errors.ApiError) and error.status == 424
    assert error.message == "mysql: the service did not accept connections within 180 s"


def test_recipe_hashes_name_the_images_and_the_root_filesystem_separately(monkeypatch):
    base, full = image_recipe.base_hash(), image_recipe.recipe_hash()
    assert HEX.fullmatch(base) and HEX.fullmatch(full) and base != full
    # an entrypoint change names new service images but reuses the slow root filesystem
    monkeypatch.setitem(image_recipe.FILES, "usr/local/bin/extra", ("#!/bin/sh\n", 0o755))
    assert image_recipe.base_hash() == base and image_recipe.recipe_hash() != full


def test_debootstrap_progress_is_condensed():
    lines = []
    condensed = images._Condensed(lines.append)
    for n in range(100):
        condensed(f"I: Retrieving package{n} 1.0\n")
        condensed(f"I: Validating package{n} 1.0\n")
    condensed("I: Extracting base-files...\n")
    condensed("W: something odd\n")
    assert lines[0] == "debootstrap: I: Retrieving package0 1.0"
    assert "debootstrap: I: Extracting base-files..." in lines and "debootstrap: W: something odd" in lines
    assert len(lines) < 10


def test_stored_credentials_round_trip(tmp_path):
    from core import config
    from models import database, migrations, open_database
    previous = config._current
    config.use(config.load({"BERTH_DATA_DIR": str(tmp_path), "BERTH_PROXY_LISTEN": "127.0.0.1"}))
    open_database(config.get().database_url)
    migrations.migrate()
    try:
        assert credentials.app_env("a", "mysql") is None
        credentials.put_app_env("a", "mysql", {"K": "1"})
        credentials.put_app_env("a", "mysql", {"K": "2"})
        credentials.put_app_env("a", "redis", {"R": "x"})
        assert credentials.app_env("a", "mysql") == {"K": "2"}
        assert sorted(credentials.app_addons("a")) == ["mysql", "redis"]
        credentials.forget_app_env("a", "mysql")
        assert credentials.app_addons("a") == ["redis"]

        first = credentials.ensure_service_row("postgresql")
        assert credentials.ensure_service_row("postgresql").root_password == first.root_password
        assert [r.name for r in credentials.services()] == ["postgresql"]
        assert services.list_names() == ["postgresql", "mysql"]
        credentials.ensure_service_row("redis-abc", "pw")
        assert services.list_names() == ["postgresql", "mysql", "redis-abc"]
    finally:
        database.close()
        config.use(previous)
