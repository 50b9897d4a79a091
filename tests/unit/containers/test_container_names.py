"""Container names come from app ids: only ids that make a plain Docker name are accepted."""
import pytest

from containers import engine


def test_app_ids_name_their_container():
    assert engine.container_name("a1b2-c_d.e") == "berth-a1b2-c_d.e"


@pytest.mark.parametrize("bad", ["", "-x", ".x", "../x", "a/b", "a b", "app1\n", "x" * 122, None, 7])
def test_ids_that_make_no_plain_name_are_refused(bad):
    with pytest.raises(ValueError, match="cannot name a container"):
        engine.container_name(bad)
