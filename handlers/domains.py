"""domains tag of openapi.yaml."""
import domains
from handlers import domain_schemas
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_domains():
    return {"domains": domain_schemas.summaries.dump(domains.list_domains(), many=True)}


def add_domain(body, token_info):
    dom = domains.add_domain(actor(token_info), body)
    return {"domain": dom.domain, "config": domains.masked_config(dom)}, 201


def get_domain(domain):
    return domain_schemas.domain.dump(domains.get_domain(domain))


def update_domain(domain, body, token_info):
    domains.update_domain(actor(token_info), domain, body)
    return None, 204


def remove_domain(domain, token_info):
    domains.remove_domain(actor(token_info), domain)
    return None, 204


def check_dns(domain, subdomain=None):
    return {"needsOverwrite": domains.needs_overwrite(domain, subdomain or "")}
