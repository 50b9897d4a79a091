"""support tag of openapi.yaml."""
from handlers import not_implemented

__getattr__ = not_implemented(__name__)
