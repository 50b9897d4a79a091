"""Marshmallow schemas of the Apps tag (the App object as the seed shows it)."""
from marshmallow import Schema, fields

import volumes
from apps import mailbox as app_mailbox
from apps import proxy_config as app_proxy
from handlers.serialize import IsoTime


class AppSchema(Schema):
    id = fields.String()
    appStoreId = fields.String(attribute="app_store_id")
    installationState = fields.String(attribute="installation_state")
    error = fields.Raw(allow_none=True)
    runState = fields.String(attribute="run_state")
    health = fields.String(allow_none=True)
    taskId = fields.Function(lambda a: str(a.task_id) if a.task_id else None)
    location = fields.String()
    subdomain = fields.String(attribute="location", dump_only=True)   # the Cloudron 7+ name of location
    domain = fields.String()
    fqdn = fields.String()
    alternateDomains = fields.Raw(attribute="alternate_domains")
    redirectDomains = fields.Raw(attribute="redirect_domains")
    manifest = fields.Raw()
    portBindings = fields.Raw(attribute="port_bindings")
    ports = fields.Raw(attribute="port_bindings", dump_only=True)     # the Cloudron 7+ name of portBindings
    accessRestriction = fields.Raw(attribute="access_restriction", allow_none=True)
    memoryLimit = fields.Integer(attribute="memory_limit")
    env = fields.Raw()
    debugMode = fields.Raw(attribute="debug_mode", allow_none=True)
    robotsTxt = fields.String(attribute="robots_txt")
    enableBackup = fields.Boolean(attribute="enable_backup")
    enableAutomaticUpdate = fields.Boolean(attribute="enable_automatic_update")
    label = fields.String()
    tags = fields.Raw()
    iconUrl = fields.Function(lambda a: f"/api/v1/apps/{a.id}/icon" if a.has_icon else None)
    dataDir = fields.String(attribute="data_dir", allow_none=True)
    cpuShares = fields.Integer(attribute="cpu_shares")
    reverseProxyConfig = fields.Function(lambda a: app_proxy.of(a))
    mailboxName = fields.Function(lambda a: app_mailbox.address(a)[0])
    mailboxDomain = fields.Function(lambda a: app_mailbox.address(a)[1])
    mounts = fields.Function(lambda a: volumes.app_mounts(a.id))     # [{volumeId, readOnly}]
    creationTime = IsoTime(attribute="creation_time")
    updateTime = IsoTime(attribute="update_time")
    ts = IsoTime()


RESTRICTED = ("id", "appStoreId", "installationState", "runState", "health", "location", "subdomain", "domain",
              "fqdn", "manifest", "portBindings", "ports", "iconUrl", "creationTime", "ts", "tags", "label")

full = AppSchema()
restricted = AppSchema(only=RESTRICTED)
