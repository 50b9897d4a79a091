"""What each server worker process does when it starts serving and when it stops (ASGI lifespan):
run the task engine, end log streams on shutdown, and tune the garbage collector once start-up
is over."""
import contextlib
import gc
import os

from metrics import exposition
from tasks import lifecycle
from web import event_stream

# Measured with bench/streams.py (1,000 open streams, one worker): with CPython's default
# thresholds, full collections ran every ~10 s and paused the event loop for 100-190 ms (they
# walk every object, the parsed API spec included), which alone broke the 200 ms line-delivery
# target. Freezing what exists once start-up is over and collecting the youngest generation
# less often made full collections disappear from a streaming run (pauses ~5 ms).
GC_THRESHOLDS = (20000, 20, 20)


def settle_heap() -> None:
    gc.collect()
    gc.freeze()  # start-up objects live as long as the process: never scan them again
    gc.set_threshold(*GC_THRESHOLDS)


@contextlib.asynccontextmanager
async def lifespan(app=None):
    # The task runner and scheduler live as long as each serving worker.
    async with lifecycle.running_engine():
        event_stream.end_streams_on_shutdown()
        settle_heap()
        try:
            yield
        finally:
            exposition.forget_process(os.getpid())  # its open log streams no longer count
