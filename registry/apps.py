from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self) -> None:
        from audits.access import register_model_directory
        from audits.reconcile import register_reconciler

        from .reconcile import reconcile_registry
        from .selectors import AuditModelDirectory

        register_model_directory(AuditModelDirectory())
        register_reconciler("registry", reconcile_registry)
