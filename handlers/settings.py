"""settings tag of openapi.yaml."""
import backups
from handlers import actor, not_implemented

__getattr__ = not_implemented(__name__)


def get_backup_config():
    return backups.masked_config()


def set_backup_config(body, token_info):
    backups.set_config(actor(token_info), body)
    return {}
