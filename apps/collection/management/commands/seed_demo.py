"""`manage.py seed_demo`: the demo project, demo accounts, and sampling of its tasks."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.collection.demo import DEMO_PASSWORD, demo_seed, demo_users_create


class Command(BaseCommand):
    help = "Create or refresh the demo project; sample its completions on the worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-users", action="store_true", help="Do not create the demo accounts."
        )
        parser.add_argument("--no-sampling", action="store_true", help="Do not enqueue sampling.")

    def handle(self, *args, **options) -> None:
        if not options["no_users"]:
            if not settings.DEBUG:
                raise CommandError("Demo accounts have known passwords: only with DEBUG on.")
            created = demo_users_create()
            if created:
                self.stdout.write(
                    f"Demo accounts {', '.join(created)} (password {DEMO_PASSWORD!r})."
                )
        seed = demo_seed()
        self.stdout.write(
            f"Demo project {seed.project.slug!r}: {seed.prompts_created} new prompts, "
            f"{seed.tasks_created} new tasks."
        )
        if seed.sampling_needed and not options["no_sampling"]:
            from apps.collection.tasks import demo_sample_task

            transaction.on_commit(lambda: demo_sample_task.delay(seed.project.pk, seed.policy.pk))
            self.stdout.write(
                "Sampling the demo's completions from SmolLM2-135M-Instruct on the worker; "
                "ranking tasks appear when it finishes (a few minutes on CPU, once)."
            )
