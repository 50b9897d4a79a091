"""App addons (Cloudron manifest `addons`): databases, mail and storage an app declares."""
