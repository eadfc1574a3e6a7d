"""WSGI entry point, the only one: Django's ASGI handler would spool request bodies to disk."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from portraitsite.bodydeadline import BodyDeadline

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
# Every request body within REQUEST_BODY_DEADLINE_SECONDS, or the connection is dropped.
application = BodyDeadline(get_wsgi_application(), settings.REQUEST_BODY_DEADLINE_SECONDS)
