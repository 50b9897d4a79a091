"""System tag (Cloudron 7+): what the machine has. Figures are measured on each request."""
from core import disks
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_disk_usage():
    return {"usage": disks.usage()}
