from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "PrefLoop core"

    def ready(self) -> None:
        from django.urls import register_converter

        from apps.core.ids import IdConverter

        # `<id:name>` in every URL: ASCII digits within a bigint, else no match (404).
        register_converter(IdConverter, "id")
