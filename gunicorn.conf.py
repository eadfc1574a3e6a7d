"""gunicorn as deployed: one process with threads, because the default job store (LocMem) lives in
the process's memory. With CACHE_URL=redis://… several processes may share jobs: set
WEB_CONCURRENCY. Read by `gunicorn -c gunicorn.conf.py portraitsite.wsgi`."""

import ctypes
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
_shared_store = os.environ.get("CACHE_URL", "").startswith(("redis://", "rediss://", "unix://"))
workers = int(os.environ.get("WEB_CONCURRENCY", "1")) if _shared_store else 1
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
# Slow providers are waited for in the job pool, never in a request; a request that takes longer
# than this is stuck.
timeout = 60
graceful_timeout = 30
keepalive = 5
# Bodies up to MAX_UPLOAD_BYTES arrive in the request; headers stay small.
limit_request_line = 4094
# The heartbeat file lives in RAM, not on disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No control socket under $HOME/.gunicorn (gunicorn ≥ 25): nothing of ours on disk.
control_socket_disable = True
preload_app = False

# glibc's malloc raises its mmap threshold after every large free (up to 32 MB), after which
# photo-sized buffers come from heaps it rarely gives back: measured, a worker grew 2.6-3.7× the
# bytes its jobs held (bench/memory.py). A fixed threshold of 1 MiB (which also turns the dynamic
# adjustment off) maps every photo-sized buffer on its own and unmaps it when freed: 1.01×.
# MALLOC_MMAP_THRESHOLD_ in the environment still wins; other C libraries are left alone.
M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1024 * 1024


def post_fork(server, worker):
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # not glibc
        return
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        server.log.warning("mallopt(M_MMAP_THRESHOLD) refused; workers may hold freed photo memory.")


# Access log without the client address or user agent (we collect neither), and with job tokens
# redacted: the token is the only key to somebody's photo.
accesslog = "-"
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"


# Every access-log atom scrubbed of job tokens, the visitor's address and browser left out, and
# the error log scrubbed too (portraitsite.logging.GunicornLogger).
logger_class = "portraitsite.logging.GunicornLogger"
