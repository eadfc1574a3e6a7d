from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UnlockConfig(AppConfig):
    name = "unlock"
    verbose_name = _("Unlock codes")

    def ready(self) -> None:
        from unlock import checks  # noqa: F401  (registers the deployment check)
