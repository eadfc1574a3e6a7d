"""WSGI entry point, the only one: Django's ASGI handler would spool request bodies to disk."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
application = get_wsgi_application()
