from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from . import schema, signals  # noqa: F401  (OpenAPI auth scheme; sign-in events)
