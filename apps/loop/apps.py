from django.apps import AppConfig


class LoopConfig(AppConfig):
    name = "apps.loop"
    label = "loop"
    verbose_name = "Training loop"

    def ready(self) -> None:
        from apps.loop import upcoming

        upcoming.register()
