"""Settings for portraitsite, read from the environment (see .env.example for every variable).

With nothing set the site runs in development mode only if DEBUG=true is set (bin/start does
that): SQLite, the local-memory job store and the embedded engines, no keys needed. With DEBUG off
every secret must be given, and malformed values stop start-up with a message naming the variable.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

# File-aware: any variable can instead be given as NAME_FILE, the path of a file holding the value
# (Docker and systemd credentials), so secrets need not sit in the environment.
env = environ.FileAwareEnv()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _setting(reader, name: str, **kwargs):
    """Read one variable; a malformed value stops start-up with the variable's name."""
    try:
        return reader(name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from exc


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _setting(env.str, name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value


def _positive(name: str, default: int, minimum: int = 1) -> int:
    value = _setting(env.int, name, default=default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {value}.")
    return value


DEBUG = _setting(env.bool, "DEBUG", default=False)


def _secret(name: str, dev_default: str) -> str:
    value = _setting(env.str, name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. Production mode (DEBUG off) needs it; generate one with "
        f"`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )


SECRET_KEY = _secret("SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production")
# Unlock codes are stored as HMAC digests under this key. When unset it is derived from
# SECRET_KEY (see unlock.codes); set it separately to rotate SECRET_KEY without voiding codes.
UNLOCK_CODE_KEY = _setting(env.str, "UNLOCK_CODE_KEY", default="")

ALLOWED_HOSTS = _setting(env.list, "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is not set. Production mode (DEBUG off) needs it.")

# Admin under a path of the operator's choosing; everything session-shaped lives only there.
ADMIN_URL = _setting(env.str, "ADMIN_URL", default="admin/").strip("/") + "/"
OPERATOR_NAME = _setting(env.str, "OPERATOR_NAME", default="portraitsite")
# The name visitors see: header, page titles, legal pages, the admin, error emails.
SITE_NAME = _setting(env.str, "SITE_NAME", default="portraitsite").strip() or "portraitsite"
# Optional logo beside the name: a file among the site's static files ("img/logo.svg"), never
# another origin (portraitsite.operator_checks refuses one).
SITE_LOGO_URL = _setting(env.str, "SITE_LOGO_URL", default="").strip()
CONTACT_EMAIL = _setting(env.str, "CONTACT_EMAIL", default="privacy@example.com")
# /healthz shows its details (store fill, jobs, engines, credits) only to
# `Authorization: Bearer <HEALTHZ_TOKEN>`; unset, only in development (DEBUG).
HEALTHZ_TOKEN = _setting(env.str, "HEALTHZ_TOKEN", default="").strip()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "portraitsite",
    "segmentation",
    "unlock",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Above everything that answers early (static files, refused cross-site posts): every
    # response gets X-Frame-Options, not only those that reach a view.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portraitsite.middleware.NoVisitorCookiesMiddleware",
    "portraitsite.middleware.ForwardingWatchMiddleware",
    "portraitsite.middleware.HeadersMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything that answers early, so that refusals speak the language of their URL.
    "portraitsite.languages.LanguageMiddleware",
    "portraitsite.middleware.RefuseCrossSitePostsMiddleware",
    # Session, auth and messages run only under ADMIN_URL: visitors never meet them.
    "portraitsite.middleware.AdminSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "portraitsite.middleware.AdminAuthenticationMiddleware",
    "portraitsite.middleware.AdminMessageMiddleware",
    # A body that missed REQUEST_BODY_DEADLINE_SECONDS (portraitsite.wsgi) is a 408, not a 500.
    "portraitsite.bodydeadline.SlowBodyMiddleware",
    # An unreachable Redis or database is a 503 with Retry-After, not a 500.
    "portraitsite.outages.OutageMiddleware",
]

ROOT_URLCONF = "portraitsite.urls"
WSGI_APPLICATION = "portraitsite.wsgi.application"
# No ASGI application on purpose: Django's ASGI handler spools request bodies to a temporary
# file, which would put uploaded photos on disk (portraitsite.checks guards this).

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portraitsite.context_processors.site",
                "portraitsite.context_processors.removebg_credits",
            ],
        },
    },
]

DATABASES = {"default": _setting(env.db_url, "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent redemptions queue on SQLite's write lock instead of failing "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server costs a page 2 s, then it answers 503 (portraitsite.outages).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- The job store -------------------------------------------------------------------------
JOB_TTL_SECONDS = _positive("JOB_TTL_SECONDS", 1800, minimum=60)
JOB_CACHE_ALIAS = "jobs"


def _redis_outage_options() -> dict:
    """A Redis that is down or hung costs a page at most about 2 s, then it answers 503
    (portraitsite.outages): without timeouts redis-py waits for ever on a server that stopped
    answering, and by default it retries three times with up to 10 s of backoff. One retry, at
    once, covers a connection that Redis closed when it restarted. 1 s per socket operation is
    far above what a 20 MB photo takes on a local network (about 0.2 s at 1 Gbit/s)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"socket_connect_timeout": 1, "socket_timeout": 1, "retry": Retry(NoBackoff(), 1)}


def _job_cache() -> dict:
    config = _setting(env.cache_url, "CACHE_URL", default="locmemcache://portraitsite-jobs")
    config["TIMEOUT"] = JOB_TTL_SECONDS
    if config["BACKEND"] in ("django_redis.cache.RedisCache", "redis_cache.RedisCache"):
        # django-environ picks a third-party Redis backend when one is installed; the byte budget
        # and the persistence check are written for Django's own.
        config["BACKEND"] = "django.core.cache.backends.redis.RedisCache"
    if config["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        config.setdefault("OPTIONS", {}).update(_redis_outage_options())
    if config["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache":
        # Our LocMem adds an active expiry sweep and byte accounting. MAX_ENTRIES is far above
        # what the byte budget admits, so LocMem's culling can never drop a live job.
        config["BACKEND"] = "segmentation.cache.SweepingLocMemCache"
        config.setdefault("OPTIONS", {})["MAX_ENTRIES"] = 1_000_000
    return config


# Two aliases on the same backend: "jobs" holds photos, "default" the small things (rate limits).
# With LocMem they get separate stores, so the byte budget counts photos only.
CACHES = {"default": dict(_job_cache(), KEY_PREFIX="site"), JOB_CACHE_ALIAS: dict(_job_cache(), KEY_PREFIX="job")}
if CACHES[JOB_CACHE_ALIAS]["BACKEND"] == "segmentation.cache.SweepingLocMemCache":
    CACHES["default"]["LOCATION"] = CACHES[JOB_CACHE_ALIAS]["LOCATION"] + "-site"

IMAGE_STORE_MAX_BYTES = _positive("IMAGE_STORE_MAX_BYTES", 2 * 1024**3)
MAX_UPLOAD_BYTES = _positive("MAX_UPLOAD_BYTES", 20 * 1024**2, minimum=1024)
MAX_IMAGE_PIXELS = _positive("MAX_IMAGE_PIXELS", 50_000_000, minimum=1)

# --- Uploads stay in memory ------------------------------------------------------------------
# Only our capped in-memory handler: never TemporaryFileUploadHandler (portraitsite.checks).
FILE_UPLOAD_HANDLERS = ["segmentation.uploads.CappedMemoryUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # the non-file fields (mode, code) are tiny
# Multipart framing around the file (boundaries, part headers, the mode field) fits in 64 KiB.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# A request body must have arrived this many seconds after its request began, or the connection
# is dropped (portraitsite.bodydeadline): without it a client trickling an upload holds a gunicorn
# thread for ever. 60 s lets a 20 MB photo through at about 3 Mbit/s; behind nginx bodies arrive
# whole and this never triggers.
REQUEST_BODY_DEADLINE_SECONDS = _positive("REQUEST_BODY_DEADLINE_SECONDS", 60)

# --- Processing --------------------------------------------------------------------------------
JOB_WORKERS = _positive("JOB_WORKERS", 2)
JOB_QUEUE = _positive("JOB_QUEUE", 8, minimum=0)
JOB_DEADLINE_SECONDS = _positive("JOB_DEADLINE_SECONDS", 600, minimum=5)

# --- Engines -----------------------------------------------------------------------------------
# Stripped: a key read from a secret file often ends in a newline, which requests would refuse
# (and quote) as a header value.
REMOVEBG_API_KEY = _setting(env.str, "REMOVEBG_API_KEY", default="").strip()
REMOVEBG_API_URL = _setting(env.str, "REMOVEBG_API_URL", default="https://api.remove.bg/v1.0").rstrip("/")
REMOVEBG_FULL_RESULT = _choice("REMOVEBG_FULL_RESULT", "on_unlock", ("on_unlock", "upfront"))
# Below this many credits the admin shows a banner and the log a WARNING (at most once an hour).
REMOVEBG_LOW_CREDITS = _positive("REMOVEBG_LOW_CREDITS", 50, minimum=0)
DASHSCOPE_API_KEY = _setting(env.str, "DASHSCOPE_API_KEY", default="").strip()
DASHSCOPE_API_URL = _setting(env.str, "DASHSCOPE_API_URL", default="https://dashscope-intl.aliyuncs.com/api/v1").rstrip(
    "/"
)
DASHSCOPE_MODEL = _setting(env.str, "DASHSCOPE_MODEL", default="qwen-image-edit-plus")


def _prompt(name: str, limit: int) -> str:
    """An instruction for the image-edit model; empty means the built-in one. DashScope refuses a
    longer text, and cutting it would silently change what the operator wrote."""
    value = _setting(env.str, name, default="").strip()
    if len(value) > limit:
        raise ImproperlyConfigured(f"{name} is {len(value)} characters long; DashScope takes at most {limit}.")
    return value


DASHSCOPE_PROMPT = _prompt("DASHSCOPE_PROMPT", 800)
DASHSCOPE_NEGATIVE_PROMPT = _prompt("DASHSCOPE_NEGATIVE_PROMPT", 500)

BACKGROUND_ENGINE = _choice("BACKGROUND_ENGINE", "auto", ("auto", "removebg", "local"))
CROWD_ENGINE = _choice("CROWD_ENGINE", "auto", ("auto", "dashscope", "local"))
if BACKGROUND_ENGINE == "removebg" and not REMOVEBG_API_KEY:
    raise ImproperlyConfigured("BACKGROUND_ENGINE=removebg needs REMOVEBG_API_KEY.")
if CROWD_ENGINE == "dashscope" and not DASHSCOPE_API_KEY:
    raise ImproperlyConfigured("CROWD_ENGINE=dashscope needs DASHSCOPE_API_KEY.")

# --- Abuse limits --------------------------------------------------------------------------------
UPLOADS_PER_MINUTE = _positive("UPLOADS_PER_MINUTE", 10, minimum=0)
UNLOCK_FAILURES_PER_MINUTE = _positive("UNLOCK_FAILURES_PER_MINUTE", 10, minimum=0)
UNLOCK_FAILURES_PER_JOB = 5  # per job per 10 minutes: a token cannot be used to brute-force codes
# Uploads a minute per client when a paid provider serves them (each is a billed call).
PAID_UPLOADS_PER_MINUTE = _positive("PAID_UPLOADS_PER_MINUTE", 4, minimum=0)
# Billed calls per provider and hour, for the whole site (shared through the job cache); beyond
# it the embedded engine serves uploads.
PROVIDER_CALLS_PER_HOUR = _positive("PROVIDER_CALLS_PER_HOUR", 0, minimum=0)
# What one client may hold in the job store at a time: live jobs, and a share of the budget.
CLIENT_LIVE_JOBS = _positive("CLIENT_LIVE_JOBS", 5, minimum=0)
CLIENT_STORE_PERCENT = _positive("CLIENT_STORE_PERCENT", 10, minimum=0)
if CLIENT_STORE_PERCENT > 100:
    raise ImproperlyConfigured("CLIENT_STORE_PERCENT is a percentage of IMAGE_STORE_MAX_BYTES: at most 100.")
# Downloads on a coloured background a minute per job: each decodes the whole result.
BACKGROUND_DOWNLOADS_PER_MINUTE = _positive("BACKGROUND_DOWNLOADS_PER_MINUTE", 6, minimum=0)
# Redrawn previews per job when the visitor chooses who stays (each is engine work in the pool,
# and after unlocking a new full-resolution result); 0 turns the choice off.
CHOICES_PER_JOB = _positive("CHOICES_PER_JOB", 20, minimum=0)
TRUSTED_PROXIES = _positive("TRUSTED_PROXIES", 0, minimum=0)

# --- No cookies for visitors -----------------------------------------------------------------------
# The admin is the only place with a session; its cookie never leaves the admin path, and its
# CSRF token lives in that session, so CsrfViewMiddleware is not installed at all. The admin's
# views carry csrf_protect themselves.
SESSION_COOKIE_PATH = "/" + ADMIN_URL
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax" if DEBUG else "Strict"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_AGE = 8 * 3600
CSRF_USE_SESSIONS = True
CSRF_COOKIE_SECURE = not DEBUG
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Headers ---------------------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = _setting(env.bool, "SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else 63072000
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = False  # preloading is the operator's decision, not ours
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /healthz is probed by load balancers over plain HTTP inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

SILENCED_SYSTEM_CHECKS = [
    # CsrfViewMiddleware is not installed on purpose: it would hand visitors a cookie. The admin's
    # views carry csrf_protect (token in the admin session), and public POSTs, which hold no
    # ambient credential, refuse cross-site requests (RefuseCrossSitePostsMiddleware).
    "security.W003",
    # HSTS preloading is hard to undo and covers every subdomain: the operator's call, not ours.
    "security.W021",
]

# --- Internationalisation ----------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG  # development: serve from the app folders, no collectstatic

# --- Logging and error reports: never images, codes, tokens or who the visitor was -----------------
# Error emails go to ERROR_EMAILS and nowhere when it is empty. Reports carry no local variables
# (views hold photos and codes in them), no POST/FILES/GET/cookie values, none of the visitor's
# headers, and tokens are cut out of every path (portraitsite.logging).
ADMINS = _setting(env.list, "ERROR_EMAILS", default=[])
SERVER_EMAIL = _setting(env.str, "SERVER_EMAIL", default="portraitsite@localhost")
EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
_email = _setting(env.email_url, "EMAIL_URL", default="smtp://localhost:25")
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": {
            "host": _email.get("EMAIL_HOST") or "localhost",
            "port": _email.get("EMAIL_PORT") or 25,
            "username": _email.get("EMAIL_HOST_USER", ""),
            "password": _email.get("EMAIL_HOST_PASSWORD", ""),
            "use_tls": bool(_email.get("EMAIL_USE_TLS")),
            "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
            "timeout": 10,
        }
        if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
        else {},
    }
}
DEFAULT_EXCEPTION_REPORTER = "portraitsite.logging.PrivateExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "portraitsite.logging.PrivateExceptionReporterFilter"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_tokens": {"()": "portraitsite.logging.RedactTokensFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "plain": {
            "()": "portraitsite.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_tokens"]},
        "mail_operator": {
            "class": "portraitsite.logging.RedactingAdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "redact_tokens"],
        },
    },
    "root": {"handlers": ["console", "mail_operator"], "level": "INFO"},
    "loggers": {
        # Replaces Django's default handlers for its loggers (an unscrubbed console and mailer).
        "django": {"handlers": ["console", "mail_operator"], "level": "INFO", "propagate": False},
        # Django's request logger would print the path (with the job token) of every 4xx.
        "django.request": {"handlers": ["console", "mail_operator"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # Requests for other host names are scanners, not errors worth an email.
        "django.security.DisallowedHost": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
