"""localstorage: the app's persistent /app/data.

Every app container gets its data folder bound at /app/data (containers.create_and_start), as
Berth always did, so apps that do not declare the addon keep working as before; declaring it
changes nothing but makes the folder exist before anything else is set up. The folder is what an
app backup stores (backups.stages) and it goes at uninstall with the rest of the app's folder
(apps.delete_data), so there is no teardown, backup or restore hook here.
"""
from collections.abc import Callable
from typing import Any

import containers
from core import data_paths
from models.apps import App


def setup(app: App, options: dict, log: Callable[[str], Any]) -> None:
    """Create <data>/apps/<id>/data (the app's folders 0700 on the way, see private_data_dir)."""
    containers.private_data_dir(data_paths.app_data(app.id))
