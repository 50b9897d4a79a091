"""mailserver tag of openapi.yaml: settings and reports of the one mail server."""
from mail import server_settings
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def get_eventlog(page=1, per_page=25, search=None, types=None):
    return {"eventlogs": server_settings.eventlog_entries(page, per_page, search, types)}


def get_usage(domain):
    return {"usage": server_settings.usage(domain)}


def get_location():
    return server_settings.get_location()


def set_location(body, token_info):
    task_id = server_settings.set_location(actor(token_info), body.get("subdomain"), body.get("domain"))
    return {"taskId": str(task_id)}, 202


def get_max_email_size():
    return {"size": server_settings.get_max_email_size()}


def set_max_email_size(body, token_info):
    server_settings.set_max_email_size(actor(token_info), body.get("size"))
    return {}


def get_solr_config():
    return server_settings.get_solr_config()


def set_solr_config(body, token_info):
    server_settings.set_solr_config(actor(token_info), body.get("enabled"))
    return {}


def get_spam_acl():
    return server_settings.get_spam_acl()


def set_spam_acl(token_info, body=None):
    server_settings.set_spam_acl(actor(token_info), body or {})
    return {}


def get_spam_custom_config():
    return {"config": server_settings.get_spam_custom_config()}


def set_spam_custom_config(body, token_info):
    server_settings.set_spam_custom_config(actor(token_info), body.get("config"))
    return {}
