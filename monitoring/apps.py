from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # The retention purge (inference) asks monitoring to count pending rows first and
        # keeps every raw input monitoring has not counted yet (monitoring.aggregation).
        from inference.services import input_consumer_register

        from .aggregation import catch_up_for_purge

        input_consumer_register(name="monitoring", catch_up=catch_up_for_purge)
