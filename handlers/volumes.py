"""Volumes tag: host folders and network shares apps can mount (domain code in volumes/)."""


import volumes
from handlers import file_manager
from volumes import files as volume_files
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_volumes():
    return {"volumes": [volumes.to_api(v) for v in volumes.list_volumes()]}


def add_volume(body, token_info):
    return {"id": volumes.add(actor(token_info), body)}, 201


def get_volume(volume_id):
    return volumes.to_api(volumes.get_volume(volume_id))


def update_volume(volume_id, token_info, body=None):
    volumes.update(actor(token_info), volume_id, body or {})
    return {}


def remove_volume(volume_id, token_info):
    volumes.remove(actor(token_info), volume_id)
    return None, 204


def get_status(volume_id):
    return volumes.status(volume_id)


# ---- the volume's files (volumes.files; the same answers as the app files routes) ------------------

def list_files(volume_id, file_path, download=False):
    return file_manager.list_files(volume_files.browser, volume_id, file_path, download)


def update_file(volume_id, file_path, body):
    return file_manager.update_file(volume_files.browser, volume_id, file_path, body)


def create_file(volume_id, file_path, directory=False, **_):
    return file_manager.create_file(volume_files.browser, volume_id, file_path, directory)


def delete_file(volume_id, file_path, recursive=True):
    return file_manager.delete_file(volume_files.browser, volume_id, file_path, recursive)
