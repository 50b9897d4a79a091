"""appstore tag of openapi.yaml: the configured app catalogs (appstore.catalog); the cloudron.io
account routes answer 412, this server has no store account (appstore.account)."""
from appstore import account, catalog
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_apps(search=None):
    return {"apps": catalog.list_apps(search)}


def get_app(appstore_id):
    return catalog.get_app(appstore_id)


def get_app_version(appstore_id, version):
    return catalog.get_app_version(appstore_id, version)


def register_cloudron(body=None):
    raise account.no_account()


def get_subscription():
    raise account.no_account()


def create_user_token():
    raise account.no_account()
