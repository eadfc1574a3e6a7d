from django.conf import settings
from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path

from portraitsite import views

admin.site.site_header = admin.site.site_title = f"{settings.OPERATOR_NAME} · unlock codes"
admin.site.index_title = "Staff"

# English at the root, other languages under their prefix (/zh-hans/...): the language is in the
# URL, never in a cookie.
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path(settings.ADMIN_URL, admin.site.urls),
    *i18n_patterns(
        path("", include("segmentation.urls")),
        path("privacy/", views.privacy, name="privacy"),
        path("terms/", views.terms, name="terms"),
        prefix_default_language=False,
    ),
]

handler400 = "portraitsite.errors.bad_request"
handler403 = "portraitsite.errors.permission_denied"
handler404 = "portraitsite.errors.page_not_found"
handler500 = "portraitsite.errors.server_error"
