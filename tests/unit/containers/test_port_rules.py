"""Port rules of app containers: what counts as a port, and the ports a container's
configuration and labels say it holds."""
import pytest

from containers import ports


@pytest.mark.parametrize("good, value", [(1, 1), (65535, 65535), ("8080", 8080), (443, 443)])
def test_port_numbers(good, value):
    assert ports.check_port(good) == value


@pytest.mark.parametrize("bad", [0, 65536, -1, True, False, None, "80/tcp", "", 80.5, "-1", [80]])
def test_not_port_numbers(bad):
    with pytest.raises(ValueError, match="not a port number"):
        ports.check_port(bad)


def test_published_ports_by_protocol():
    host_config = {"PortBindings": {
        "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40001"}],
        "9000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40002"}],
        "9001/udp": [{"HostIp": "0.0.0.0", "HostPort": "40003"}],
        "9002/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}],
        "9003/tcp": None,
    }}
    assert ports.published(host_config, "tcp") == {8000: 40001, 9000: 40002}
    assert ports.published(host_config, "udp") == {9001: 40003}
    assert ports.published({}, "tcp") == {}


def test_the_host_ports_label_round_trips():
    value = ports.label_value({40003, 40001, 40002})
    assert value == "40001,40002,40003"
    assert ports._from_label(value) == {40001, 40002, 40003}
    assert ports._from_label("") == set()
    assert ports._from_label("40001,junk") == {40001}
