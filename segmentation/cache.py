"""Django's local-memory cache, plus the two things a photo store needs and LocMem lacks.

* An active sweep: LocMem forgets an expired entry only when someone reads it, so a 10 MB photo
  nobody asks for again would stay in RAM forever. A daemon thread purges expired entries every
  `SWEEP_SECONDS`, and writes sweep opportunistically too.
* Byte accounting: the size of every pickled value, so the job store can refuse new jobs before
  the budget is exceeded instead of letting LocMem cull live ones.

LocMem keeps its data in module-level dicts shared by every instance with the same LOCATION (Django
makes one instance per thread), so the sizes and the sweeper are shared the same way.

Redis needs neither: it expires keys itself, and `bytes_used()` below asks it how much memory it
holds, which every process and host sharing it sees alike.
"""

from __future__ import annotations

import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

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

    def _cull(self):
        # Called with the lock held when MAX_ENTRIES is reached. Expired entries go; live ones are
        # only culled if admission failed to keep the count down, and their sizes go with them.
        now = time.time()
        for key in [k for k, expiry in self._expire_info.items() if expiry is not None and expiry <= now]:
            self._cache.pop(key, None)
            self._expire_info.pop(key, None)
            self._sizes.pop(key, None)
        if len(self._cache) >= self._max_entries:
            super()._cull()
            for key in [k for k in self._sizes if k not in self._cache]:
                self._sizes.pop(key, None)

    def clear(self):
        super().clear()
        with self._lock:
            self._sizes.clear()

    def reserve(self, key: str, nbytes: int, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        """Count `nbytes` in bytes_used() under `key` before they are stored: an empty entry that
        expires like any other, so a reservation can never outlive what it was made for."""
        self.set(key, b"", timeout, version)
        with self._lock:
            self._sizes[self.make_and_validate_key(key, version=version)] = nbytes

    def draw(self, key: str, nbytes: int, version=None) -> None:
        """`nbytes` of a reservation have now been stored: they stop counting twice."""
        key = self.make_and_validate_key(key, version=version)
        with self._lock:
            if key in self._sizes:
                self._sizes[key] = max(0, self._sizes[key] - nbytes)

    def room_for_entries(self, count: int) -> bool:
        """Whether `count` more entries fit below MAX_ENTRIES, where LocMem would start culling
        the oldest entries, live jobs among them."""
        with self._lock:
            return len(self._cache) + count < self._max_entries

    def bytes_used(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

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


def bytes_used(backend: BaseCache) -> int | None:
    """Bytes of RAM the store holds now, or None for a backend that cannot say.

    Redis answers with INFO's `used_memory`: what it has allocated for every key, with the
    per-key overhead and pickling included, and the very number its `maxmemory` limit is compared
    with. Expiry is Redis's own, so the figure drops when jobs expire without anything of ours
    having to keep a ledger in step. It covers the whole instance (the rate-limit keys, ~1 MB of
    Redis itself, anything else stored there), which is why docs/scaling.md asks for an instance
    of its own. Writes go to the first server of LOCATION, so that is the one asked.
    """
    if isinstance(backend, SweepingLocMemCache):
        return backend.bytes_used()
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(write=True)
        return int(client.info("memory")["used_memory"])
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for Redis refusing a write at maxmemory (maxmemory-policy noeviction)."""
    try:
        from redis.exceptions import OutOfMemoryError
    except ImportError:
        return False
    return isinstance(exc, OutOfMemoryError)
