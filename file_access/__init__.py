"""Files under a root folder a user may not leave: listing, streaming, writing, never following symlinks out."""
