from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "apps.quality"
    label = "quality"
    verbose_name = "Rater quality"

    def ready(self) -> None:
        # The assignment engine asks quality through interfaces registered here: screening,
        # and dynamic overlap's decision whether a full task needs another rater.
        # apps/collection knows nothing of apps/quality (docs/design.md, "Collection and quality").
        from apps.collection.allowance import register_slot_decider
        from apps.collection.screening import screening_register
        from apps.quality.overlap import task_slot_decide
        from apps.quality.screening import QualityScreening

        screening_register(QualityScreening())
        register_slot_decider(task_slot_decide)
