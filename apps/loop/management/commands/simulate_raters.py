"""`manage.py simulate_raters`: N synthetic raters rank a project's tasks over the REST API.

    manage.py simulate_raters --project demo --raters 6 --adversarial 1 --max-judgments 200

The raters (created on first use with apps.accounts.services.rater_create) log in with
POST /api/auth/token/ and then lease, rank and submit like any API client. Their hidden
preference is apps/loop/scoring.py: answers that address the prompt in plain words,
concisely, without refusing. Each rater adds Gaussian noise of its own size to that score,
drawn once per rater from U(--noise-min, --noise-max); adversarial raters rank by the negated
score. The default sizes (0.05-0.25) make two honest raters agree on about 73% of the pairs
of the demo's SmolLM2 answers, as InstructGPT's labelers agreed with each other on 72.6 ±
1.5% of comparisons (Ouyang et al. 2022, "Human data collection"); at 0.05-0.4 they agreed
on 66% (docs/loop.md, "Demo"). Only 127.0.0.1/localhost is accepted.

The site: --url, else the address `make run` wrote into var/site-url (whatever its PORT),
else http://127.0.0.1:8000; the command checks that a PrefLoop site answers there first.
With no task left the raters wait while a round of the project is sampling or collecting
(its tasks are coming), then --wait seconds more; --max-seconds bounds the whole run.
"""

from __future__ import annotations

import random
from pathlib import Path

from django.conf import settings
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
MAX_SECONDS = 24 * 3_600
DEFAULT_URL = "http://127.0.0.1:8000"
SITE_URL_FILE = "site-url"  # written by scripts/run.sh (`make run`)


def site_url_file() -> Path:
    return Path(settings.VAR_DIR) / SITE_URL_FILE


def default_url() -> str:
    """Where `make run` said the site is (var/site-url), else the default port."""
    try:
        written = site_url_file().read_text(encoding="utf-8").strip()
    except OSError:
        return DEFAULT_URL
    return written or DEFAULT_URL


def round_coming(project) -> bool:
    """A round of the project is sampling or collecting: its ranking tasks are on the way."""
    from apps.loop.models import Stage, TrainingRound

    return TrainingRound.objects.filter(
        project=project, stage__in=[Stage.SAMPLING, Stage.COLLECTING]
    ).exists()


class Command(BaseCommand):
    help = "Drive the REST API with synthetic raters (127.0.0.1 only, bounded)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default="",
            help="Site to rate on (default: the address in var/site-url, which `make run` "
            f"writes, else {DEFAULT_URL}).",
        )
        parser.add_argument(
            "--project", required=True, help='Project id or slug (the demo\'s is "demo").'
        )
        parser.add_argument("--raters", type=int, default=6, help=f"How many (≤ {MAX_RATERS}).")
        parser.add_argument("--adversarial", type=int, default=1, help="How many rank inverted.")
        parser.add_argument("--max-judgments", type=int, default=200)
        parser.add_argument(
            "--max-seconds",
            type=float,
            default=3 * 3_600.0,
            help=f"Stop after this many seconds in any case (default 3 h, at most {MAX_SECONDS}).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=60.0,
            help="With no task left and no round of the project sampling or collecting, "
            "keep polling this many seconds before stopping (default 60).",
        )
        parser.add_argument("--noise-min", type=float, default=0.05)
        parser.add_argument("--noise-max", type=float, default=0.25)
        parser.add_argument("--prefix", default="simrater")
        parser.add_argument("--password", default="simulated-rater-pw")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        url = options["url"] or default_url()
        try:
            check_local(url)
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
        if not 0 <= options["wait"] <= MAX_SECONDS:
            raise CommandError(f"--wait must be in [0, {MAX_SECONDS}].")
        project = project_from_arg(str(options["project"]))
        client = ApiClient(url)
        self._check_site(client, url, explicit=bool(options["url"]))
        raters = self._raters(options, project)
        self.stdout.write(
            f"{len(raters)} simulated raters on {project.slug!r} at {url} "
            f"(up to {options['max_judgments']} judgments)"
        )
        try:
            result = simulate(
                client=client,
                raters=raters,
                password=options["password"],
                project_id=project.pk,
                max_judgments=options["max_judgments"],
                max_seconds=options["max_seconds"],
                idle_wait_seconds=options["wait"],
                work_coming=lambda: round_coming(project),
                on_wait=lambda reason: self.stdout.write(f"waiting: {reason}"),
            )
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.judgments} judgments, {result.skipped} skipped, "
            f"{len(result.errors)} errors in {result.seconds}s; stopped: {result.stopped}"
        )
        for line in result.errors[:10]:
            self.stderr.write(line)
        return None

    def _check_site(self, client: ApiClient, url: str, explicit: bool) -> None:
        """A clear message, before any rater is made, when no PrefLoop site answers."""
        try:
            status, _ = client.call("GET", "/healthz")
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            if explicit:
                where = "--url"
            elif site_url_file().is_file():
                where = str(site_url_file())
            else:
                where = "the default address"
            raise CommandError(
                f"No PrefLoop site answers at {url} ({reason}; address from {where}). Start "
                "it with `make run` (which writes its address to var/site-url, so this command "
                "finds it on any PORT), or pass --url http://127.0.0.1:PORT."
            ) from None
        if status not in (200, 503):
            raise CommandError(f"{url}/healthz answered {status}: is this a PrefLoop site?")

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
