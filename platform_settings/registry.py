"""Private Docker registry credentials (`/settings/registry_config`), used for app image pulls.

- Saving logs in to the registry through the engine first (containers.registry_auth.login): wrong
  credentials are 400 and nothing is stored, so a typo cannot break every later install.
- The password is answered as core.masking.MASK; MASK sent back keeps the stored one (for the same
  registry and username: a changed address or user must not inherit a password made for another).
  It is kept in the settings table like the backup storage secrets (the database is 0600 in a
  0700 folder) and never logged or put in the event log.
- pull_auth(image) gives the credentials only to pulls from the configured registry, so they are
  never sent to Docker Hub or any other registry an app's image names.
- `provider: noop` (or an empty serverAddress) removes the credentials.
"""
import eventlog
from containers import registry_auth
from core.errors import BadRequest
from core.masking import MASK
from models import Setting

SETTING = "registry_config"
NOOP = {"provider": "noop", "serverAddress": ""}


def _stored() -> dict:
    return Setting.read(SETTING) or dict(NOOP)


def get_config() -> dict:
    """The config as the API shows it: the password masked."""
    cfg = {k: v for k, v in _stored().items() if k != "password"}
    if _stored().get("password"):
        cfg["password"] = MASK
    return cfg


def _text(body: dict, name: str, limit: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("must be a string", name)
    value = value.strip()
    if len(value) > limit:
        raise BadRequest(f"must be at most {limit} characters", name)
    return value


def validate(body: dict, stored: dict) -> dict:
    """The config to store (password in clear), or NOOP. MASK keeps the stored password."""
    provider = _text(body, "provider", 64) or "other"
    server = _text(body, "serverAddress", 512)
    if provider == "noop" or not server:
        return dict(NOOP)
    address = registry_auth.normalise_address(server)
    if not address or any(c.isspace() for c in address):
        raise BadRequest("must be a registry host, optionally with a port (e.g. registry.example.com:5000)",
                         "serverAddress")
    username = _text(body, "username", 256)
    if not username:
        raise BadRequest("is required", "username")
    password = body.get("password")
    if password == MASK:
        same = (registry_auth.normalise_address(stored.get("serverAddress") or "") == address
                and stored.get("username") == username)
        password = stored.get("password") if same else None
    if not password or not isinstance(password, str):
        raise BadRequest("is required", "password")
    cfg = {"provider": provider, "serverAddress": server, "username": username, "password": password}
    email = _text(body, "email", 254)
    if email:
        cfg["email"] = email
    return cfg


def set_config(actor: eventlog.Actor, body: dict) -> None:
    """Log in with the credentials, then store them (nothing is stored when the login fails)."""
    cfg = validate(body, _stored())
    if cfg["provider"] != "noop":
        registry_auth.login(cfg["serverAddress"], cfg["username"], cfg["password"])
    Setting.put(SETTING, cfg)
    eventlog.record("cloudron.settings", actor, setting=SETTING,
                    value={k: v for k, v in cfg.items() if k != "password"})


def pull_auth(image: str) -> dict | None:
    """The auth_config for pulling `image`: the stored credentials when the image comes from the
    configured registry, None otherwise."""
    cfg = _stored()
    if cfg.get("provider", "noop") == "noop" or not cfg.get("password"):
        return None
    if registry_auth.registry_of(image) != registry_auth.normalise_address(cfg["serverAddress"]):
        return None
    return registry_auth.auth_config(cfg["username"], cfg["password"], cfg["serverAddress"])
