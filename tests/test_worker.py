"""The workers' shared retry rhythm and supervision."""

import threading
import time

from edge.runtime.health_schema import WorkerHealth
from edge.runtime.worker import Backoff, Supervised


def test_backoff_doubles_to_its_ceiling_and_starts_small_after_a_healthy_run():
    backoff = Backoff(0.5, 2.0, healthy_s=5.0)
    assert [backoff.after(0.0) for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert backoff.after(6.0) == 0.5  # the last attempt held for 6 s: a new outage starts small
    assert backoff.after(1.0) == 1.0


def test_a_crashing_job_is_restarted_reported_and_cleared_once_healthy():
    runs = []
    healthy = threading.Event()

    def job(stop: threading.Event) -> None:
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise RuntimeError(f"crash {len(runs)}")
        healthy.set()
        stop.wait()

    worker = Supervised("job", job, Backoff(0.05, 0.1, healthy_s=0.3))
    worker.start()
    assert healthy.wait(5)
    reported = worker.health()
    time.sleep(0.4)
    cleared = worker.health()
    worker.stop()
    assert reported == WorkerHealth("failing", 2, "RuntimeError: crash 2")
    assert cleared == WorkerHealth("running", 2, None)
    assert worker.health() == WorkerHealth("stopped", 2, None)
    assert runs[1] - runs[0] >= 0.05 and runs[2] - runs[1] >= 0.1
