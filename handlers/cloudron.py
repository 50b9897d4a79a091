"""Cloudron tag: status, activation, login/logout, config, event log."""
import accounts
import audit
import config
import sessions
from handlers import actor, client_ip, not_implemented
from handlers.serialize import event_json
from models import iso

__getattr__ = not_implemented(__name__)


def get_status():
    cfg = config.get()
    origin = f"http://{cfg.host}:{cfg.port}"
    return {
        "version": cfg.version, "apiServerOrigin": origin, "webServerOrigin": origin,
        "provider": "generic", "cloudronName": "Berth", "footer": "", "adminFqdn": None,
        "activated": accounts.is_activated(),
        "setup": {"active": False, "message": "", "errorMessage": None},
        "restore": {"active": False, "message": "", "errorMessage": None},
    }
