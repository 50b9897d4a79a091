"""Cloudron app manifests (manifestVersion 2): the checks the spec's schema cannot express.

The request schema in openapi.yaml already rejects wrong types, missing required fields and
bad patterns; this adds cross-field rules and returns a normalised copy.
"""
import re

from addons import registry as addon_registry
from core.errors import BadRequest

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
REQUIRED = ("id", "version", "title", "dockerImage", "httpPort", "healthCheckPath")


def validate(manifest: object, field: str = "manifest") -> dict:
    if not isinstance(manifest, dict):
        raise BadRequest("must be an object", field)
    if manifest.get("manifestVersion") != 2:
        raise BadRequest("must be 2", f"{field}.manifestVersion")
    for key in REQUIRED:
        if manifest.get(key) in (None, ""):
            raise BadRequest("is required", f"{field}.{key}")
    port = manifest["httpPort"]
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadRequest("must be a port number (1-65535)", f"{field}.httpPort")
    if not str(manifest["healthCheckPath"]).startswith("/"):
        raise BadRequest("must start with /", f"{field}.healthCheckPath")
    if not isinstance(manifest["dockerImage"], str) or " " in manifest["dockerImage"]:
        raise BadRequest("must be an image reference like 'name:tag'", f"{field}.dockerImage")
    for kind in ("tcpPorts", "udpPorts"):
        for env_name, spec in (manifest.get(kind) or {}).items():
            where = f"{field}.{kind}.{env_name}"
            if not ENV_NAME.match(env_name):
                raise BadRequest("must be an upper-case environment variable name", where)
            if not isinstance(spec, dict):
                raise BadRequest("must be an object", where)
            container_port = spec.get("containerPort", spec.get("defaultValue"))
            if not isinstance(container_port, int) or not 1 <= container_port <= 65535:
                raise BadRequest("needs containerPort or defaultValue (1-65535)", where)
    limit = manifest.get("memoryLimit", 0)
    if not isinstance(limit, int) or limit < 0:
        raise BadRequest("must be a number of bytes >= 0", f"{field}.memoryLimit")
    # An addon Berth has not got (or cannot provide here) is refused now, before the app exists.
    addon_registry.check_manifest(manifest.get("addons"), f"{field}.addons")
    return dict(manifest)


def declared_ports(manifest: dict) -> dict[str, tuple[int, str]]:
    """{ENV_NAME: (containerPort, protocol)} of the manifest's tcpPorts and udpPorts."""
    ports = {}
    for kind, proto in (("tcpPorts", "tcp"), ("udpPorts", "udp")):
        for env_name, spec in (manifest.get(kind) or {}).items():
            ports[env_name] = (spec.get("containerPort", spec.get("defaultValue")), proto)
    return ports
