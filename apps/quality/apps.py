from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "apps.quality"
    label = "quality"
    verbose_name = "Rater quality"

    def ready(self) -> None:
        # the assignment engine asks screening through this interface (apps/collection
        # knows nothing of apps/quality; docs/design.md, "Collection and quality")
        from apps.collection.screening import screening_register
        from apps.quality.screening import QualityScreening

        screening_register(QualityScreening())
