"""apps.data_folder.check_folder: where an app's data may move (configure/data_dir), and the
reverse proxy values that could not be rendered into a vhost safely (proxy_settings)."""
import os

import pytest

from core.errors import BadRequest


def check(value, data_root="/srv/berth-data", others=()):
    from apps.data_folder import check_folder
    return check_folder(value, data_root=data_root, others=others)


@pytest.mark.parametrize("folder", ["/", "/etc", "/etc/app", "/proc", "/sys/x", "/dev", "/usr/local/data",
                                    "/var/lib/docker", "/var/lib/docker/volumes/x", "/var", "/var/lib",
                                    "/boot", "/run/app"])
def test_system_folders_their_insides_and_their_parents_are_refused(folder):
    with pytest.raises(BadRequest, match="^dataDir: "):
        check(folder)


@pytest.mark.parametrize("folder", ["/srv/berth-data", "/srv/berth-data/apps/x/data", "/srv", "/srv/"])
def test_berth_data_dir_its_inside_and_its_parents_are_refused(folder):
    with pytest.raises(BadRequest, match="inside or above /srv/berth-data"):
        check(folder)


@pytest.mark.parametrize("folder", ["relative/path", "", "data", 42, None])
def test_a_folder_that_is_not_an_absolute_path_is_refused(folder):
    with pytest.raises(BadRequest, match="^dataDir: must be an absolute path"):
        check(folder)


def test_a_path_is_normalised_before_it_is_checked(tmp_path):
    assert check(f"{tmp_path}//new/./x/../data/") == f"{tmp_path}/new/data"
    with pytest.raises(BadRequest, match="inside or above /etc"):
        check(f"{tmp_path}/../../../../../../etc/cron.d")


def test_control_characters_are_refused(tmp_path):
    with pytest.raises(BadRequest, match="control characters"):
        check(f"{tmp_path}/a\nb")


def test_a_folder_overlapping_another_apps_data_is_refused(tmp_path):
    other = str(tmp_path / "other")
    for folder in (other, f"{other}/inner", str(tmp_path)):
        with pytest.raises(BadRequest, match="another app"):
            check(folder, others=(other,))


def test_an_empty_or_missing_folder_is_accepted_a_full_one_or_a_file_is_not(tmp_path):
    assert check(str(tmp_path / "missing" / "deeper")) == str(tmp_path / "missing" / "deeper")
    (tmp_path / "empty").mkdir()
    assert check(str(tmp_path / "empty")) == str(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(BadRequest, match="is not empty"):
        check(str(tmp_path / "full"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadRequest, match="is not a folder"):
        check(str(tmp_path / "file"))


def test_data_dir_through_a_planted_symlink_to_etc_is_refused(tmp_path):
    """A symlinked component would send the app's data (and the bind mount) somewhere else."""
    os.symlink("/etc", tmp_path / "esc")
    for folder in (tmp_path / "esc", tmp_path / "esc" / "cron.d" / "new"):
        with pytest.raises(BadRequest, match="symlink"):
            check(str(folder))


@pytest.mark.parametrize(("field", "value"), [
    ("csp", "default-src 'self'\"; return 200 \"pwned"),
    ("csp", "default-src 'self'\nadd_header X-Injected 1"),
    ("csp", "default-src ${host}"),
    ("csp", "default-src 'self' } server {"),
    ("robotsTxt", "User-agent: *\";\n}\nserver { listen 81; }"),
    ("robotsTxt", "Disallow: /a\\"),
    ("robotsTxt", "x" * 4097),
    ("hstsPreload", "yes"),
])
def test_proxy_values_that_could_inject_nginx_directives_are_refused(field, value):
    from reverse_proxy import proxy_settings
    assert proxy_settings.problem(field, value)
    with pytest.raises(ValueError):
        proxy_settings.normalise({field: value})


def test_proxy_values_render_as_one_quoted_string_each():
    from reverse_proxy import proxy_settings
    lines = proxy_settings.server_lines({"robotsTxt": "User-agent: *\nDisallow: /private # no\n",
                                         "csp": "default-src 'self'; img-src *", "hstsPreload": True})
    assert 'add_header Content-Security-Policy "default-src \'self\'; img-src *" always;' in lines
    assert any("preload" in line and "Strict-Transport-Security" in line for line in lines)
    assert '    return 200 "User-agent: *\\nDisallow: /private # no\\n";' in lines
    assert proxy_settings.server_lines(None) == [] == proxy_settings.server_lines({"robotsTxt": None})
