"""settings tag of openapi.yaml."""
import appstore.settings
import appstore.support
import backups
import domains
import platform_settings
import system_services
from accounts import directory_config, external_ldap
from handlers import branding
from platform_settings import registry as registry_settings
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_backup_config():
    return backups.masked_config()


def set_backup_config(body, token_info):
    backups.set_config(actor(token_info), body)
    return {}


def get_app_autoupdate_pattern():
    return {"pattern": platform_settings.get_update_pattern("app")}


def set_app_autoupdate_pattern(body, token_info):
    platform_settings.set_update_pattern(actor(token_info), "app", body["pattern"])
    return {}


def get_box_autoupdate_pattern():
    return {"pattern": platform_settings.get_update_pattern("box")}


def set_box_autoupdate_pattern(body, token_info):
    platform_settings.set_update_pattern(actor(token_info), "box", body["pattern"])
    return {}


# The 6.x single pattern is the app update pattern.
get_autoupdate_pattern = get_app_autoupdate_pattern
set_autoupdate_pattern = set_app_autoupdate_pattern


def get_time_zone():
    return {"timeZone": platform_settings.get("time_zone")}


def set_time_zone(body, token_info):
    platform_settings.set_time_zone(actor(token_info), body["timeZone"])
    return {}


def get_cloudron_name():
    return {"name": platform_settings.get("cloudron_name")}


def set_cloudron_name(body, token_info):
    platform_settings.set_cloudron_name(actor(token_info), body["name"])
    return {}, 202


# The older path of the branding icon: the same operations.
get_cloudron_avatar = branding.get_cloudron_avatar
set_cloudron_avatar = branding.set_cloudron_avatar


def get_unstable_apps():
    return {"enabled": bool(platform_settings.get("unstable_apps"))}


def set_unstable_apps(body, token_info):
    platform_settings.put(actor(token_info), "unstable_apps", bool(body["enabled"]))
    return {}


def get_language():
    return {"language": platform_settings.get("language")}


def set_language(body, token_info):
    platform_settings.put(actor(token_info), "language", body["language"])
    return {}


def get_sysinfo_config():
    return domains.public_address.get_config()


def set_sysinfo_config(body, token_info):
    domains.public_address.set_config(actor(token_info), body)
    return {}


def get_dynamic_dns():
    return {"enabled": domains.dynamic_dns.enabled()}


def set_dynamic_dns(body, token_info):
    domains.dynamic_dns.set_enabled(actor(token_info), body["enabled"])
    return {}


# platform_config: the memory limits of the addon services, the same ones POST /services/{name} sets.
def get_platform_config():
    return system_services.platform_config()


def set_platform_config(body, token_info):
    system_services.set_platform_config(actor(token_info), body)
    return {}


def get_directory_config():
    return directory_config.get()


def set_directory_config(body, token_info):
    directory_config.set_config(actor(token_info), body)
    return {}


def get_support_config():
    return appstore.support.get_config()


def get_appstore_config():
    return appstore.settings.get_config()


def set_appstore_config(body, token_info):
    return appstore.settings.set_config(actor(token_info), body)


# external_ldap_config: checked by a bind before it is saved; the bind password is masked.
def get_external_ldap_config():
    return external_ldap.get_config()


def set_external_ldap_config(body, token_info):
    external_ldap.set_config(actor(token_info), body)
    return {}


# registry_config: checked by a registry login before it is saved; the password is masked.
def get_registry_config():
    return registry_settings.get_config()


def set_registry_config(body, token_info):
    registry_settings.set_config(actor(token_info), body)
    return {}
