from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UnlockConfig(AppConfig):
    name = "unlock"
    verbose_name = _("Unlock codes")
