"""mail tag of openapi.yaml: each domain's mail settings, mailboxes, aliases and mailing lists."""
from mail import account_mail, addresses, lists, settings, status
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


# ---- the domain's mail settings -------------------------------------------------------------------

def get_mail_domain(domain):
    return settings.view(settings.get_settings(domain))


def get_status(domain):
    return status.status(domain)


def set_enabled(domain, body, token_info):
    settings.set_enabled(actor(token_info), domain, body.get("enabled"))
    return {}, 202


def set_mail_from_validation(domain, body, token_info):
    settings.set_mail_from_validation(actor(token_info), domain, body.get("enabled"))
    return {}, 202


def set_catch_all(domain, body, token_info):
    settings.set_catch_all(actor(token_info), domain, body.get("addresses"))
    return {}, 202


def set_relay(domain, body, token_info):
    settings.set_relay(actor(token_info), domain, body)
    return {}, 202


def set_banner(domain, body, token_info):
    settings.set_banner(actor(token_info), domain, body)
    return {}, 202


def send_test_mail(domain, body, token_info):
    account_mail.send_test_mail(actor(token_info), domain, body.get("to"))
    return {}, 202


# ---- mailboxes and aliases ------------------------------------------------------------------------

def get_mailbox_count(domain):
    return {"count": addresses.mailbox_count(domain)}


def list_mailboxes(domain, page=1, per_page=25, search=None):
    return {"mailboxes": addresses.list_mailboxes(domain, page, per_page, search)}


def add_mailbox(domain, body, token_info):
    addresses.add_mailbox(actor(token_info), domain, body)
    return {}, 201


def get_mailbox(domain, name):
    return {"mailbox": addresses.view(addresses.get_mailbox(domain, name))}


def update_mailbox(domain, name, body, token_info):
    addresses.update_mailbox(actor(token_info), domain, name, body)
    return None, 204


def remove_mailbox(domain, name, token_info, body=None):
    addresses.remove_mailbox(actor(token_info), domain, name, (body or {}).get("deleteMails", False))
    return {}, 201


def list_aliases(domain, name, page=1, per_page=25):
    return {"aliases": addresses.list_aliases(domain, name, page, per_page)}


def set_aliases(domain, name, body, token_info):
    addresses.set_aliases(actor(token_info), domain, name, body.get("aliases"))
    return {}, 202


# ---- mailing lists --------------------------------------------------------------------------------

def list_lists(domain, page=1, per_page=25, search=None):
    return {"lists": lists.list_lists(domain, page, per_page, search)}


def add_list(domain, body, token_info):
    lists.add_list(actor(token_info), domain, body)
    return {}, 201


def get_list(domain, list_name):
    return {"list": lists.view(lists.get_list(domain, list_name))}


def update_list(domain, list_name, body, token_info):
    lists.update_list(actor(token_info), domain, list_name, body)
    return None, 204


def remove_list(domain, list_name, token_info):
    lists.remove_list(actor(token_info), domain, list_name)
    return None, 204
