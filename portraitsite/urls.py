from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.functional import lazy

from portraitsite import urls_visitor, views

# Read when a page is drawn, not at import: the name is the operator's setting (SITE_NAME).
admin.site.site_header = admin.site.site_title = lazy(lambda: f"{settings.SITE_NAME} · staff", str)()
admin.site.index_title = lazy(lambda: f"{settings.SITE_NAME}: unlock codes and usage", str)()

# The visitor's pages at the root answer in the browser's language; under /en/ and /zh-hans/
# (portraitsite.languages) in that language. Never a cookie.
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path(settings.ADMIN_URL, admin.site.urls),
    path("", include(urls_visitor.urlpatterns)),
]

handler400 = "portraitsite.errors.bad_request"
handler403 = "portraitsite.errors.permission_denied"
handler404 = "portraitsite.errors.page_not_found"
handler500 = "portraitsite.errors.server_error"
