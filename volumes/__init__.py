"""Volumes: host folders and network shares an admin attaches to apps (the /volumes routes)."""
