"""Marshmallow schemas of the Domains tag (same conventions as handlers/serialize.py).

The fallback certificate's key has no field here, so it can never be serialised.
"""
from marshmallow import Schema, fields

import domains


class DomainSummarySchema(Schema):
    domain = fields.String()
    zoneName = fields.String(attribute="zone_name")
    provider = fields.String()
    locked = fields.Boolean()
    config = fields.Method("_config")
    # Both the seed-era and current servers list it (clients show the certificate provider).
    tlsConfig = fields.Dict(attribute="tls_config")

    def _config(self, dom):
        return {"hyphenatedSubdomains": bool((dom.config or {}).get("hyphenatedSubdomains"))}


class DomainSchema(Schema):
    domain = fields.String()
    zoneName = fields.String(attribute="zone_name")
    provider = fields.String()
    config = fields.Function(domains.masked_config)
    tlsConfig = fields.Dict(attribute="tls_config")
    # The certificate nginx serves (uploaded or Berth's self-signed one); never the key.
    fallbackCertificate = fields.Function(lambda dom: {"cert": dom.fallback_cert})
    locked = fields.Boolean()


summaries = DomainSummarySchema()
domain = DomainSchema()
