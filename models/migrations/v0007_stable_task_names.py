"""Schema version 7: task bodies and schedule actions are stored by stable name (tasks.registry)."""


# Values of tasks.body and schedules.action written before stable names (tasks.registry)
# existed: "module:function" of the flat layout. Frozen here: the old layout is history.
LEGACY_TASK_NAMES = {
    **{f"app_tasks:{op}": f"app.{op}" for op in
       ("install", "configure", "update", "start", "stop", "restart", "uninstall")},
    "backup_tasks:full_backup": "backup.full",
    "backup_tasks:app_backup": "backup.app",
    "backup_tasks:cleanup": "backup.cleanup",
    "backup_tasks:restore_app": "backup.restore_app",
    "backup_tasks:clone_app": "backup.clone_app",
    "backup_tasks:restore_cloudron": "backup.restore_cloudron",
    "app_health:check_all": "apps.health_check",
    "app_updates:check_all": "apps.autoupdate",
    "app_updates:nothing": "box.autoupdate",
    "backups:scheduled_backup": "backup.scheduled",
    "backups:scheduled_cleanup": "backup.scheduled_cleanup",
}


def migrate(db):
    """tasks.body and schedules.action hold stable names instead of module paths."""
    for old, new in LEGACY_TASK_NAMES.items():
        db.execute_sql("UPDATE tasks SET body = %s WHERE body = %s" % (db.param, db.param), (new, old))
        db.execute_sql("UPDATE schedules SET action = %s WHERE action = %s" % (db.param, db.param), (new, old))
