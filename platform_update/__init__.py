"""Updates of Berth itself (release feed, update task after a backup) and the reboot routes."""
