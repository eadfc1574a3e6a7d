"""gunicorn.conf.py as shipped, with one fault added for tests/test_upload_burst.py: every intake
takes SLOW_INTAKE_SECONDS longer, as a whole-photo decode does on a busy machine. The worker also
reports on its error log the most intakes it ever had running at once."""

import os
import runpy
import sys
import threading
import time
from pathlib import Path

globals().update(
    {
        name: value
        for name, value in runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")).items()
        if not name.startswith("__")
    }
)


def post_worker_init(worker):
    from segmentation import intake

    accept_upload, delay = intake.accept_upload, float(os.environ["SLOW_INTAKE_SECONDS"])
    lock, running = threading.Lock(), [0, 0]  # now, most ever

    def slow_accept_upload(data):
        with lock:
            running[0] += 1
            running[1] = max(running)
            print(f"intakes at once: {running[1]}", file=sys.stderr, flush=True)
        try:
            time.sleep(delay)
            return accept_upload(data)
        finally:
            with lock:
                running[0] -= 1

    intake.accept_upload = slow_accept_upload
