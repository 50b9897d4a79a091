"""How secrets look when an API answer has to mention that one is set."""
MASK = "\u25cf" * 8  # what Cloudron answers in place of a stored secret; sent back, it means "unchanged"
