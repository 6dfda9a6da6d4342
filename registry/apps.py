from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self) -> None:
        from audits.access import register_model_directory

        from .selectors import AuditModelDirectory

        register_model_directory(AuditModelDirectory())
