"""A guard against a hang, not a benchmark: run a piece of work with a limit on the CPU time it may
take, so that a regular expression that backtracks or a decoder fed thousands of scans fails the
test instead of stalling the run."""

from __future__ import annotations

import multiprocessing
import resource
import signal
import warnings
from collections.abc import Callable

# CPU seconds, not wall-clock seconds: the machine running the tests may be shared and loaded, and
# a process waiting for a core spends no CPU time.
CPU_SECONDS = 2
# Only in case the child sleeps or blocks instead of computing.
WALL_SECONDS = 300


def finishes_in_time(work: Callable[..., object], *args: object, cpu_seconds: int = CPU_SECONDS) -> bool:
    """Whether `work(*args)` returns within `cpu_seconds` of CPU time. It runs in a forked copy of
    this process that the kernel stops at the limit (RLIMIT_CPU): a backtracking regular expression
    holds the GIL, and a decoder runs in C, so neither a thread nor a signal handler could stop it.
    An exception in `work` fails the test."""
    child = multiprocessing.get_context("fork").Process(target=_limited, args=(cpu_seconds, work, *args), daemon=True)
    with warnings.catch_warnings():
        # The child only runs `work`: it takes none of the locks the job pool's threads may hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    child.join(WALL_SECONDS)
    if child.is_alive():
        child.kill()
        child.join()
        return False
    assert child.exitcode in (0, -signal.SIGXCPU, -signal.SIGKILL), f"the work failed (exit code {child.exitcode})"
    return child.exitcode == 0


def _limited(cpu_seconds: int, work: Callable[..., object], *args: object) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    work(*args)
