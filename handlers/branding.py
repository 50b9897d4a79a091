"""branding tag of openapi.yaml."""
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)
