"""System checks for the configuration invariants behind the privacy promises.

`manage.py check` (and so every start-up of runserver, and `check --deploy` in CI) fails loudly if
a setting would put photos on disk, split the in-memory store across processes, or send photos to
a provider without encryption. Where a promise depends on a server we do not configure (Redis),
the check asks that server: one that writes to disk is an error, one that cannot be asked a warning.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

DISK_CACHES = (
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.db.DatabaseCache",
)
PROCESS_LOCAL_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
MEMORY_ONLY_UPLOAD_HANDLER = "segmentation.uploads.CappedMemoryUploadHandler"
GUNICORN_CONF = Path(settings.BASE_DIR) / "gunicorn.conf.py"
# A check must never hang start-up: Redis gets this long to answer.
REDIS_CHECK_TIMEOUT = 1.0


def _backend_is(backend: str, bases: tuple[str, ...]) -> bool:
    """True when the cache backend is one of `bases` or a subclass of one (a subclass of
    FileBasedCache writes to disk just the same)."""
    if backend in bases:
        return True
    try:
        backend_class = import_string(backend)
    except ImportError:
        return False  # Django's own cache check reports a backend that cannot be imported
    return any(issubclass(backend_class, import_string(base)) for base in bases)


@register(Tags.caches)
def check_job_store_in_memory(app_configs, **kwargs):
    errors = []
    for alias, config in settings.CACHES.items():
        if _backend_is(config["BACKEND"], DISK_CACHES):
            errors.append(
                Error(
                    f"Cache {alias!r} uses {config['BACKEND']}, which writes to disk or the database.",
                    hint="Photos must stay in RAM: use LocMem (the default) or Redis without persistence.",
                    id="portraitsite.E001",
                )
            )
    return errors


@register()
def check_uploads_in_memory(app_configs, **kwargs):
    if list(settings.FILE_UPLOAD_HANDLERS) != [MEMORY_ONLY_UPLOAD_HANDLER]:
        return [
            Error(
                f"FILE_UPLOAD_HANDLERS is {settings.FILE_UPLOAD_HANDLERS!r}.",
                hint=f"Only {MEMORY_ONLY_UPLOAD_HANDLER} keeps uploads in RAM with a hard cap; "
                "TemporaryFileUploadHandler would write photos to disk.",
                id="portraitsite.E002",
            )
        ]
    return []


@register()
def check_wsgi_only(app_configs, **kwargs):
    if getattr(settings, "ASGI_APPLICATION", None):
        return [
            Error(
                "ASGI_APPLICATION is set.",
                hint="Django's ASGI handler spools request bodies to temporary files; serve with WSGI only.",
                id="portraitsite.E003",
            )
        ]
    return []


# --- One process for a process-local store ---------------------------------------------------


def gunicorn_workers(conf_file: Path = GUNICORN_CONF) -> int:
    """How many worker processes gunicorn will start, decided the way gunicorn decides it: the
    configuration file evaluated in this environment (it picks the count from CACHE_URL and
    WEB_CONCURRENCY), then GUNICORN_CMD_ARGS on top. Arguments typed on gunicorn's own command
    line are beyond what a check can see."""
    from gunicorn.config import Config

    config = Config()
    spec = importlib.util.spec_from_file_location("_portraitsite_gunicorn_conf", conf_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, value in vars(module).items():
        if name in config.settings:
            config.set(name, value)
    from_environment = config.parser().parse_args(config.get_cmd_args_from_env())
    for name, value in vars(from_environment).items():
        if value is not None and name != "args":
            config.set(name, value)
    return config.workers


@register(Tags.caches)
def check_one_process_for_a_local_store(app_configs, **kwargs):
    """A LocMem job store lives in one process's memory: with two gunicorn workers a visitor's
    job page would be a 404 half the time, and the byte budget would count per process."""
    if not GUNICORN_CONF.is_file():
        return []
    local = [
        alias
        for alias in (settings.JOB_CACHE_ALIAS, "default")
        if _backend_is(settings.CACHES[alias]["BACKEND"], PROCESS_LOCAL_CACHES)
    ]
    if not local:
        return []
    try:
        workers = gunicorn_workers(GUNICORN_CONF)
    except Exception as exc:  # a broken gunicorn.conf.py or GUNICORN_CMD_ARGS
        return [
            Error(
                f"Could not evaluate {GUNICORN_CONF.name}: {exc}",
                hint="Fix the file or GUNICORN_CMD_ARGS; gunicorn would not start either.",
                id="portraitsite.E004",
            )
        ]
    if workers > 1:
        return [
            Error(
                f"gunicorn would start {workers} worker processes, but the cache {local[0]!r} lives in "
                "one process's memory (LocMem).",
                hint="Run one process with threads (the default), or set CACHE_URL=redis://… to share "
                "jobs between processes.",
                id="portraitsite.E004",
            )
        ]
    return []


# --- Photos travel encrypted -------------------------------------------------------------------


@register()
def check_providers_use_https(app_configs, **kwargs):
    """The privacy page promises that photos travel to providers over HTTPS. Plain http is allowed
    only to this machine (the fakes the tests run), which is no third party."""
    from segmentation.engines import engines_in_use
    from segmentation.providers.http import is_loopback

    in_use = set(engines_in_use().values())
    errors = []
    for engine, setting in (("removebg", "REMOVEBG_API_URL"), ("dashscope", "DASHSCOPE_API_URL")):
        if engine not in in_use:
            continue
        url = urlsplit(getattr(settings, setting))
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.hostname or "")):
            errors.append(
                Error(
                    f"{setting} is not an https:// URL.",
                    hint="Photos must travel to providers encrypted; the privacy page says so.",
                    id="portraitsite.E005",
                )
            )
    return errors


# --- Redis: RAM only, and never evicting -------------------------------------------------------


def _redis_servers(location) -> list[str]:
    if isinstance(location, str):
        return [server.strip() for server in location.split(",") if server.strip()]
    return list(location)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def _redis_config(url: str) -> dict[str, str]:
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_CHECK_TIMEOUT, socket_timeout=REDIS_CHECK_TIMEOUT, decode_responses=True
    )
    try:
        config = {}
        for name in ("save", "appendonly", "maxmemory-policy"):
            config.update(client.config_get(name))
        return config
    finally:
        client.close()


@register(Tags.caches)
def check_redis_keeps_nothing_on_disk(app_configs, **kwargs):
    """Redis with RDB snapshots or an append-only file writes every photo to disk: an error, which
    stops start-up. Managed Redis services often refuse CONFIG; then the operator is told to check
    by hand (a warning, which they may silence as portraitsite.W003 once they have)."""
    aliases_by_server: dict[str, list[str]] = {}
    for alias, config in settings.CACHES.items():
        if _backend_is(config["BACKEND"], (REDIS_CACHE,)):
            for server in _redis_servers(config.get("LOCATION", "")):
                aliases_by_server.setdefault(server, []).append(alias)
    messages = []
    for server, aliases in aliases_by_server.items():
        where = f"Redis at {_without_credentials(server)} (cache {', '.join(map(repr, aliases))})"
        try:
            redis_config = _redis_config(server)
        except Exception as exc:
            messages.append(
                Warning(
                    f"Could not ask {where} whether it persists to disk: {type(exc).__name__}.",
                    hint='Make sure it runs with save "" and appendonly no.',
                    id="portraitsite.W003",
                )
            )
            continue
        if redis_config.get("save", "").strip() or redis_config.get("appendonly") == "yes":
            # An error, not a warning: the privacy page promises that photos never touch a disk.
            messages.append(
                Error(
                    f"{where} writes its data to disk (save {redis_config.get('save')!r}, "
                    f"appendonly {redis_config.get('appendonly')!r}).",
                    hint='Photos must stay in RAM: configure save "" and appendonly no.',
                    id="portraitsite.E006",
                )
            )
        if redis_config.get("maxmemory-policy", "noeviction") != "noeviction":
            messages.append(
                Warning(
                    f"{where} evicts keys under memory pressure "
                    f"(maxmemory-policy {redis_config.get('maxmemory-policy')}).",
                    hint="A visitor's job could vanish before it expires; use maxmemory-policy noeviction "
                    "and let IMAGE_STORE_MAX_BYTES refuse new uploads instead.",
                    id="portraitsite.W002",
                )
            )
    return messages
