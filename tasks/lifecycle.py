"""Start and stop the task engine with each server worker process (web.lifespan calls this).

Every worker runs a Runner and a Scheduler; the database makes them cooperate (see `tasks`).
"""
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import tasks
from tasks import runner, schedules

log = logging.getLogger("berth.tasks")


@contextlib.asynccontextmanager
async def running_engine() -> AsyncIterator[None]:
    """The Runner and the Scheduler of this process, for as long as the block runs."""
    task_runner = runner.Runner()
    task_runner.start()
    tasks._runner = task_runner
    scheduler = schedules.Scheduler(task_runner.id)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown()
        tasks._runner = None
        # Stopping waits for the task processes to be told; off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, task_runner.stop)
