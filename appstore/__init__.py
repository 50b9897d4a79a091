"""App catalogs: the /appstore routes and installing by appStoreId, from catalogs an admin configures.

    catalog.py   the catalogs (files or URLs): resolve an appStoreId, list/search, versions, icons
    settings.py  the sources set at run time (/settings/appstore_config)
    account.py   the cloudron.io account routes: this server has no store account (412)
    support.py   support config, ticket composition (sent by mail.outgoing), remote support refusal
"""
