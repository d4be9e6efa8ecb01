"""`manage.py simulate_raters`: N synthetic raters rank a project's tasks over the REST API.

    manage.py simulate_raters --project demo --raters 6 --adversarial 1 --max-judgments 200

The raters (created on first use with apps.accounts.services.rater_create) log in with
POST /api/auth/token/ and then lease, rank and submit like any API client. Their hidden
preference is apps/loop/scoring.py: answers that address the prompt in plain words,
concisely, without refusing. Each rater adds Gaussian noise of its own size to that score;
adversarial raters rank by the negated score. Only 127.0.0.1/localhost is accepted.
"""

from __future__ import annotations

import random

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import rater_create
from apps.collection.management.commands._project_arg import project_from_arg
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.loop.simulation import (
    ApiClient,
    SimulatedRater,
    SimulationError,
    check_local,
    simulate,
)

MAX_RATERS = 50
MAX_JUDGMENTS = 5_000
MAX_SECONDS = 3_600


class Command(BaseCommand):
    help = "Drive the REST API with synthetic raters (127.0.0.1 only, bounded)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Site to rate on.")
        parser.add_argument(
            "--project", required=True, help='Project id or slug (the demo\'s is "demo").'
        )
        parser.add_argument("--raters", type=int, default=6, help=f"How many (≤ {MAX_RATERS}).")
        parser.add_argument("--adversarial", type=int, default=1, help="How many rank inverted.")
        parser.add_argument("--max-judgments", type=int, default=200)
        parser.add_argument("--max-seconds", type=float, default=300.0)
        parser.add_argument(
            "--wait", type=float, default=0.0, help="Keep polling this long when no task is left."
        )
        parser.add_argument("--noise-min", type=float, default=0.05)
        parser.add_argument("--noise-max", type=float, default=0.4)
        parser.add_argument("--prefix", default="simrater")
        parser.add_argument("--password", default="simulated-rater-pw")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        try:
            check_local(options["url"])
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        count = options["raters"]
        if not 1 <= count <= MAX_RATERS:
            raise CommandError(f"--raters must be between 1 and {MAX_RATERS}.")
        if not 0 <= options["adversarial"] <= count:
            raise CommandError("--adversarial must be between 0 and --raters.")
        if not 1 <= options["max_judgments"] <= MAX_JUDGMENTS:
            raise CommandError(f"--max-judgments must be between 1 and {MAX_JUDGMENTS}.")
        if not 0 < options["max_seconds"] <= MAX_SECONDS:
            raise CommandError(f"--max-seconds must be in (0, {MAX_SECONDS}].")
        project = project_from_arg(str(options["project"]))
        raters = self._raters(options, project)
        try:
            result = simulate(
                client=ApiClient(options["url"]),
                raters=raters,
                password=options["password"],
                project_id=project.pk,
                max_judgments=options["max_judgments"],
                max_seconds=options["max_seconds"],
                idle_wait_seconds=options["wait"],
            )
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.judgments} judgments, {result.skipped} skipped, "
            f"{len(result.errors)} errors in {result.seconds}s"
        )
        for line in result.errors[:10]:
            self.stderr.write(line)
        return None

    def _raters(self, options, project) -> list[SimulatedRater]:
        from django.contrib.auth import get_user_model

        users = get_user_model().objects
        rng = random.Random(options["seed"])
        raters = []
        for index in range(options["raters"]):
            username = f"{options['prefix']}{index + 1}"
            user = users.filter(username=username).first()
            if user is None:
                user = rater_create(
                    username=username, password=options["password"], roles=[Role.LABELER]
                )
            # Labelers of this project, so that a project closed to the pool works too.
            membership_add(project=project, user=user, role=Role.LABELER)
            noise = rng.uniform(options["noise_min"], options["noise_max"])
            raters.append(
                SimulatedRater(
                    username=username,
                    noise=noise,
                    adversarial=index >= options["raters"] - options["adversarial"],
                    rng=random.Random(options["seed"] * 1000 + index),
                )
            )
        return raters
