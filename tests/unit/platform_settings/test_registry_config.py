"""Private registry credential rules: which pulls get them, and what a MASK keeps."""
import pytest

from containers import registry_auth
from core.errors import BadRequest
from core.masking import MASK
from platform_settings import registry

STORED = {"provider": "other", "serverAddress": "registry.example:5000", "username": "u", "password": "secret"}


@pytest.mark.parametrize("address, expected", [
    ("https://Registry.Example:5000/v2/", "registry.example:5000"), ("index.docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"), ("ghcr.io", "ghcr.io"),
])
def test_addresses_are_normalised(address, expected):
    assert registry_auth.normalise_address(address) == expected


@pytest.mark.parametrize("image, expected", [
    ("busybox", "docker.io"), ("library/busybox:1", "docker.io"),
    ("registry.example:5000/a/b:1", "registry.example:5000"),
    ("127.0.0.1:5000/x@sha256:" + "0" * 64, "127.0.0.1:5000"), ("ghcr.io/o/i", "ghcr.io"),
])
def test_registry_of_an_image(image, expected):
    assert registry_auth.registry_of(image) == expected


def test_mask_keeps_the_password_only_for_the_same_registry_and_user():
    assert registry.validate(dict(STORED, password=MASK), STORED)["password"] == "secret"
    for change in ({"username": "other"}, {"serverAddress": "evil.example"}):
        with pytest.raises(BadRequest):
            registry.validate(dict(STORED, password=MASK, **change), STORED)


def test_noop_or_empty_address_removes_the_credentials():
    assert registry.validate({"provider": "noop", "serverAddress": "x"}, STORED) == registry.NOOP
    assert registry.validate({"serverAddress": ""}, STORED) == registry.NOOP


def test_credentials_go_only_to_their_registry(db):
    from models import Setting
    Setting.put(registry.SETTING, STORED)
    assert registry.pull_auth("registry.example:5000/team/app:1") == {
        "username": "u", "password": "secret", "serveraddress": "registry.example:5000"}
    assert registry.pull_auth("busybox:latest") is None
    assert registry.pull_auth("registry.example:5001/team/app:1") is None
    assert registry.pull_auth("registry.example.evil.test/team/app:1") is None
