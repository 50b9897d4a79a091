"""apps.manifests.validate: the cross-field rules the spec's schema cannot express."""
import pytest

from apps import manifests
from core.errors import BadRequest

GOOD = {"manifestVersion": 2, "id": "io.test.app", "version": "1.0.0", "title": "T",
        "dockerImage": "busybox:1", "httpPort": 8000, "healthCheckPath": "/"}


def test_a_good_manifest_comes_back_as_a_copy():
    out = manifests.validate(GOOD)
    assert out == GOOD and out is not GOOD


@pytest.mark.parametrize("change, field", [
    ({"manifestVersion": 1}, "manifest.manifestVersion"),
    ({"title": ""}, "manifest.title"),
    ({"dockerImage": None}, "manifest.dockerImage"),
    ({"httpPort": 0}, "manifest.httpPort"),
    ({"httpPort": "80"}, "manifest.httpPort"),
    ({"httpPort": 70000}, "manifest.httpPort"),
    ({"healthCheckPath": "health"}, "manifest.healthCheckPath"),
    ({"dockerImage": "busybox 1"}, "manifest.dockerImage"),
    ({"tcpPorts": {"ssh_port": {"containerPort": 22}}}, "manifest.tcpPorts.ssh_port"),
    ({"tcpPorts": {"SSH_PORT": "22"}}, "manifest.tcpPorts.SSH_PORT"),
    ({"udpPorts": {"DNS_PORT": {"title": "no port"}}}, "manifest.udpPorts.DNS_PORT"),
    ({"memoryLimit": -1}, "manifest.memoryLimit"),
])
def test_bad_manifests_are_refused_naming_the_field(change, field):
    with pytest.raises(BadRequest) as caught:
        manifests.validate({**GOOD, **change})
    assert caught.value.message.startswith(field + ":"), caught.value.message


def test_not_an_object_and_another_field_name():
    with pytest.raises(BadRequest, match="^appStoreId: must be an object"):
        manifests.validate([], "appStoreId")


def test_declared_ports_take_container_port_or_default_value():
    manifest = {**GOOD, "tcpPorts": {"SSH_PORT": {"containerPort": 22}, "GIT_PORT": {"defaultValue": 9418}},
                "udpPorts": {"DNS_PORT": {"containerPort": 53}}}
    assert manifests.declared_ports(manifest) == {"SSH_PORT": (22, "tcp"), "GIT_PORT": (9418, "tcp"),
                                                  "DNS_PORT": (53, "udp")}
