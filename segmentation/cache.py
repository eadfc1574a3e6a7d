"""Django's local-memory cache, plus the two things a photo store needs and LocMem lacks.

* An active sweep: LocMem forgets an expired entry only when someone reads it, so a 10 MB photo
  nobody asks for again would stay in RAM forever. A daemon thread purges expired entries every
  `SWEEP_SECONDS`, and writes sweep opportunistically too.
* Byte accounting: the size of every pickled value, so the job store can refuse new jobs before
  the budget is exceeded instead of letting LocMem cull live ones.

LocMem keeps its data in module-level dicts shared by every instance with the same LOCATION (Django
makes one instance per thread), so the sizes and the sweeper are shared the same way.
"""

from __future__ import annotations

import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

SWEEP_SECONDS = 20

_sizes: dict[str, dict[str, int]] = {}
_sweepers: dict[str, threading.Thread] = {}
_sweepers_lock = threading.Lock()


class SweepingLocMemCache(LocMemCache):
    def __init__(self, name: str, params: dict):
        super().__init__(name, params)
        self._sizes = _sizes.setdefault(name, {})
        self._last_sweep = 0.0
        _start_sweeper(name, self)

    # LocMem calls _set and _delete with its lock held; the sizes change under the same lock.
    def _set(self, key, value, timeout=None):
        super()._set(key, value, timeout)
        self._sizes[key] = len(value)

    def _delete(self, key):
        self._sizes.pop(key, None)
        return super()._delete(key)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        super().set(key, value, timeout, version)
        self._maybe_sweep()

    def clear(self):
        super().clear()
        with self._lock:
            self._sizes.clear()

    def bytes_used(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def entry_count(self) -> int:
        with self._lock:
            return len(self._cache)

    def sweep(self) -> int:
        """Remove every expired entry now; return how many went."""
        self._last_sweep = time.time()
        return _purge_expired(self._cache, self._expire_info, self._lock, self._sizes)

    def _maybe_sweep(self) -> None:
        if time.time() - self._last_sweep > SWEEP_SECONDS:
            self.sweep()


def _start_sweeper(name: str, instance: SweepingLocMemCache) -> None:
    """One daemon thread per LOCATION. It works on LocMem's shared dicts, not on an instance, so
    it keeps nothing alive and sweeps for every thread's instance at once."""
    with _sweepers_lock:
        thread = _sweepers.get(name)
        if thread is not None and thread.is_alive():
            return
        entries, expire_info, lock, sizes = instance._cache, instance._expire_info, instance._lock, instance._sizes

        def run() -> None:
            while True:
                time.sleep(SWEEP_SECONDS)
                _purge_expired(entries, expire_info, lock, sizes)

        thread = threading.Thread(target=run, name=f"cache-sweeper:{name}", daemon=True)
        _sweepers[name] = thread
        thread.start()


def _purge_expired(entries, expire_info, lock, sizes) -> int:
    now = time.time()
    with lock:
        expired = [key for key, expiry in expire_info.items() if expiry is not None and expiry <= now]
        for key in expired:
            entries.pop(key, None)
            expire_info.pop(key, None)
            sizes.pop(key, None)
    return len(expired)
