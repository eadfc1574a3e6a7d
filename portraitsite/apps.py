from django.apps import AppConfig


class PortraitsiteConfig(AppConfig):
    name = "portraitsite"

    def ready(self) -> None:
        from portraitsite import checks, operator_checks  # noqa: F401  (registers the system checks)
