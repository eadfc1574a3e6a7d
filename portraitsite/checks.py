"""System checks for the configuration invariants behind the privacy promises.

`manage.py check` (and so every start-up of runserver, and `check --deploy` in CI) fails loudly if
a setting would put photos on disk or split the in-memory store across processes.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register

DISK_CACHES = (
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.db.DatabaseCache",
)
MEMORY_ONLY_UPLOAD_HANDLER = "segmentation.uploads.CappedMemoryUploadHandler"


@register(Tags.caches)
def check_job_store_in_memory(app_configs, **kwargs):
    errors = []
    for alias, config in settings.CACHES.items():
        if config["BACKEND"] in DISK_CACHES:
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
