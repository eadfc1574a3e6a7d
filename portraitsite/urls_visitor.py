"""The visitor's pages, the same in every language. portraitsite.urls serves them at the root (the
browser's language); under /en/ and /zh-hans/ they are served from here alone (see
portraitsite.languages)."""

from django.urls import include, path

from portraitsite import views

urlpatterns = [
    path("", include("segmentation.urls")),
    path("privacy/", views.privacy, name="privacy"),
    path("terms/", views.terms, name="terms"),
]

handler400 = "portraitsite.errors.bad_request"
handler403 = "portraitsite.errors.permission_denied"
handler404 = "portraitsite.errors.page_not_found"
handler500 = "portraitsite.errors.server_error"
