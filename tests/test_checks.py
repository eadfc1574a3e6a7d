"""Configuration guards: settings that would break a privacy promise stop `manage.py check`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache.backends.filebased import FileBasedCache
from django.core.checks import ERROR, WARNING, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from portraitsite import checks

LOCMEM = {"BACKEND": "segmentation.cache.SweepingLocMemCache", "LOCATION": "checks-test"}


class CacheOnDisk(FileBasedCache):
    """A subclass writes to disk as much as its parent."""


def ids(messages) -> list[str]:
    return [message.id for message in messages]


# --- Disk caches and upload handlers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.filebased.FileBasedCache",
        "django.core.cache.backends.db.DatabaseCache",
        "tests.test_checks.CacheOnDisk",
    ],
)
def test_a_cache_that_writes_to_disk_is_an_error(settings, backend):
    settings.CACHES = {**settings.CACHES, "jobs": {"BACKEND": backend, "LOCATION": "/nonexistent/never-written"}}
    assert ids(checks.check_job_store_in_memory(None)) == ["portraitsite.E001"]


def test_memory_caches_pass(settings):
    settings.CACHES = {
        "default": LOCMEM,
        "jobs": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"},
    }
    assert checks.check_job_store_in_memory(None) == []


def test_the_check_runs_with_every_manage_py_command(settings):
    settings.CACHES = {**settings.CACHES, "jobs": {"BACKEND": "tests.test_checks.CacheOnDisk", "LOCATION": "/x"}}
    with pytest.raises(SystemCheckError, match="portraitsite.E001"):
        call_command("check")


@pytest.mark.parametrize(
    "handlers",
    [
        [
            "django.core.files.uploadhandler.MemoryFileUploadHandler",
            "django.core.files.uploadhandler.TemporaryFileUploadHandler",
        ],
        [
            "segmentation.uploads.CappedMemoryUploadHandler",
            "django.core.files.uploadhandler.TemporaryFileUploadHandler",
        ],
        ["django.core.files.uploadhandler.TemporaryFileUploadHandler"],
        # Django's memory handler passes an oversized file on (or drops it): no hard cap.
        ["django.core.files.uploadhandler.MemoryFileUploadHandler"],
    ],
)
def test_an_upload_handler_other_than_the_capped_memory_one_is_an_error(settings, handlers):
    settings.FILE_UPLOAD_HANDLERS = handlers
    assert ids(checks.check_uploads_in_memory(None)) == ["portraitsite.E002"]


def test_the_configured_upload_handler_passes():
    assert checks.check_uploads_in_memory(None) == []


def test_an_asgi_application_is_an_error(settings):
    settings.ASGI_APPLICATION = "portraitsite.asgi.application"
    assert ids(checks.check_wsgi_only(None)) == ["portraitsite.E003"]


def test_the_shipped_configuration_passes_every_check():
    messages = [m for m in run_checks() if m.id and m.id.startswith("portraitsite.")]
    assert messages == []


# --- One gunicorn process for a LocMem store ---------------------------------------------------------


@pytest.fixture
def gunicorn_env(monkeypatch):
    for name in ("CACHE_URL", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_locmem_with_several_gunicorn_workers_is_an_error(settings, gunicorn_env):
    settings.CACHES = {"default": LOCMEM, "jobs": LOCMEM}
    gunicorn_env.setenv("GUNICORN_CMD_ARGS", "--workers 3")
    messages = checks.check_one_process_for_a_local_store(None)
    assert ids(messages) == ["portraitsite.E004"] and "3 worker processes" in messages[0].msg


def test_web_concurrency_without_a_shared_store_stays_one_process(settings, gunicorn_env):
    # gunicorn.conf.py ignores WEB_CONCURRENCY unless CACHE_URL names a shared store.
    settings.CACHES = {"default": LOCMEM, "jobs": LOCMEM}
    gunicorn_env.setenv("WEB_CONCURRENCY", "4")
    assert checks.gunicorn_workers() == 1
    assert checks.check_one_process_for_a_local_store(None) == []


def test_gunicorn_told_of_redis_while_django_keeps_locmem_is_an_error(settings, gunicorn_env):
    settings.CACHES = {"default": LOCMEM, "jobs": LOCMEM}  # e.g. a settings module that pins LocMem
    gunicorn_env.setenv("CACHE_URL", "redis://127.0.0.1:6379/0")
    gunicorn_env.setenv("WEB_CONCURRENCY", "4")
    assert ids(checks.check_one_process_for_a_local_store(None)) == ["portraitsite.E004"]


def test_several_workers_sharing_redis_pass(settings, gunicorn_env):
    redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}
    settings.CACHES = {"default": redis, "jobs": redis}
    gunicorn_env.setenv("CACHE_URL", "redis://127.0.0.1:6379/0")
    gunicorn_env.setenv("WEB_CONCURRENCY", "4")
    assert checks.gunicorn_workers() == 4
    assert checks.check_one_process_for_a_local_store(None) == []


def test_a_broken_gunicorn_configuration_is_reported(settings, gunicorn_env, tmp_path, monkeypatch):
    broken = tmp_path / "gunicorn.conf.py"
    broken.write_text("import os\nworkers = int(os.environ['WEB_CONCURRENCY'])\n")
    monkeypatch.setattr(checks, "GUNICORN_CONF", broken)
    messages = checks.check_one_process_for_a_local_store(None)
    assert ids(messages) == ["portraitsite.E004"] and "Could not evaluate" in messages[0].msg


@pytest.mark.parametrize(
    "environment, expected",
    [
        ({}, 1),
        ({"WEB_CONCURRENCY": "3"}, 1),
        ({"WEB_CONCURRENCY": "3", "CACHE_URL": "redis://127.0.0.1:6379/5"}, 3),
        ({"GUNICORN_CMD_ARGS": "--workers 2"}, 2),
    ],
)
def test_the_check_counts_workers_as_gunicorn_itself_does(gunicorn_env, environment, expected):
    """Ask gunicorn (--print-config) what it would start, and compare with the check's answer."""
    env = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")}
    env.update(environment, DEBUG="true", DJANGO_SETTINGS_MODULE="portraitsite.settings")
    printed = subprocess.run(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            "gunicorn.conf.py",
            "--print-config",
            "portraitsite.wsgi",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    workers = [line for line in printed.stdout.splitlines() if line.replace(" ", "").startswith("workers=")]
    assert workers, printed.stdout + printed.stderr
    for name, value in environment.items():
        gunicorn_env.setenv(name, value)
    assert checks.gunicorn_workers() == int(workers[0].split("=")[1]) == expected


# --- Providers over https -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, errors",
    [
        ("https://api.remove.bg/v1.0", []),
        ("http://api.remove.bg/v1.0", ["portraitsite.E005"]),
        ("ftp://api.remove.bg/v1.0", ["portraitsite.E005"]),
        ("http://127.0.0.1:8765/v1.0", []),  # a local fake is no third party
        ("http://[::1]:8765/v1.0", []),
    ],
)
def test_photos_go_to_remove_bg_only_over_https(settings, url, errors):
    settings.REMOVEBG_API_KEY, settings.BACKGROUND_ENGINE, settings.REMOVEBG_API_URL = "key", "auto", url
    assert ids(checks.check_providers_use_https(None)) == errors


def test_photos_go_to_dashscope_only_over_https(settings):
    settings.DASHSCOPE_API_KEY, settings.CROWD_ENGINE = "key", "dashscope"
    settings.DASHSCOPE_API_URL = "http://dashscope-intl.aliyuncs.com/api/v1"
    assert ids(checks.check_providers_use_https(None)) == ["portraitsite.E005"]
    settings.CROWD_ENGINE = "local"  # a URL that is not used sends nothing anywhere
    assert checks.check_providers_use_https(None) == []


# --- Redis keeps nothing on disk ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    """Start a real redis-server with the given options; stopped (by pid) afterwards."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    started = []

    def start(*options: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def redis_caches(settings, url: str) -> None:
    redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    settings.CACHES = {"default": redis, "jobs": redis}


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--save", "", "--appendonly", "no"], []),
        (["--save", "3600 1", "--appendonly", "no"], [("portraitsite.E006", ERROR)]),
        (["--save", "", "--appendonly", "yes"], [("portraitsite.E006", ERROR)]),
        (["--save", "", "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"], [("portraitsite.W002", WARNING)]),
    ],
    ids=["ram-only", "rdb-snapshots", "append-only-file", "evicting"],
)
def test_redis_that_writes_to_disk_is_an_error_and_one_that_evicts_a_warning(settings, redis_server, options, expected):
    redis_caches(settings, redis_server(*options))
    messages = checks.check_redis_keeps_nothing_on_disk(None)
    assert [(m.id, m.level) for m in messages] == expected
    assert all("'default', 'jobs'" in m.msg for m in messages), "one message per server, naming both caches"


def test_a_redis_that_cannot_be_asked_is_a_warning_not_a_hang(settings):
    redis_caches(settings, f"redis://:secret-password@127.0.0.1:{free_port()}/0")  # nothing listens
    messages = checks.check_redis_keeps_nothing_on_disk(None)
    assert [(m.id, m.level) for m in messages] == [("portraitsite.W003", WARNING)]
    assert "secret-password" not in messages[0].msg


@pytest.mark.redis
def test_the_ci_redis_is_configured_as_documented(settings):
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    redis_caches(settings, "redis://127.0.0.1:6379/0")
    assert checks.check_redis_keeps_nothing_on_disk(None) == []
