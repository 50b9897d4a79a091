"""Start and stop the task engine with each server worker process (ASGI lifespan).

Every worker runs a Runner and a Scheduler; the database makes them cooperate (see `tasks`).
"""
import asyncio
import contextlib
import gc
import logging

import log_streams
import tasks
from tasks import runner, schedules

log = logging.getLogger("berth.tasks")

# Measured with bench/streams.py (1,000 open streams, one worker): with CPython's default
# thresholds, full collections ran every ~10 s and paused the event loop for 100-190 ms (they
# walk every object, the parsed API spec included), which alone broke the 200 ms line-delivery
# target. Freezing what exists once start-up is over and collecting the youngest generation
# less often made full collections disappear from a streaming run (pauses ~5 ms).
GC_THRESHOLDS = (20000, 20, 20)


def settle_heap():
    gc.collect()
    gc.freeze()  # start-up objects live as long as the process: never scan them again
    gc.set_threshold(*GC_THRESHOLDS)


@contextlib.asynccontextmanager
async def lifespan(app=None):
    task_runner = runner.Runner()
    task_runner.start()
    tasks._runner = task_runner
    scheduler = schedules.Scheduler(task_runner.id)
    scheduler.start()
    log_streams.end_streams_on_shutdown()
    settle_heap()
    try:
        yield
    finally:
        scheduler.shutdown()
        tasks._runner = None
        await asyncio.get_running_loop().run_in_executor(None, task_runner.stop)
