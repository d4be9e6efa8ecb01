"""`manage.py import_preferences PROJECT FILE --format hh-rlhf|pairs`"""

from django.core.management.base import BaseCommand, CommandError

from apps.collection.importers import preferences_import, source_name_of
from apps.collection.importing import (
    PREFERENCE_FORMATS,
    SKIP_REASONS,
    ImportFileError,
    read_preference_records,
)
from apps.collection.models import Category, ReviewStatus

from ._project_arg import project_from_arg


class Command(BaseCommand):
    help = (
        "Turn existing comparisons into prompts, completions and imported judgments "
        "(chosen ranked above rejected). Rows that are no usable comparison are skipped and "
        "reported by reason; a malformed file imports nothing and names the line."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="Project slug or id.")
        parser.add_argument("file")
        parser.add_argument("--format", choices=PREFERENCE_FORMATS, required=True)
        parser.add_argument("--category", choices=Category.values, default=None)
        parser.add_argument(
            "--review-status",
            choices=[ReviewStatus.APPROVED, ReviewStatus.PENDING],
            default=ReviewStatus.APPROVED,
            help="Imported judgments start approved (default) or wait for review.",
        )

    def handle(self, *args, **options) -> None:
        project = project_from_arg(options["project"])
        fmt = options["format"]
        try:
            parsed = read_preference_records(options["file"], fmt)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        category = options["category"] or (Category.CHAT if fmt == "hh-rlhf" else Category.OTHER)
        result = preferences_import(
            project=project,
            parsed=parsed,
            source_name=source_name_of(options["file"]),
            category=category,
            review_status=options["review_status"],
        )
        self.stdout.write(
            f"Read {parsed.rows_read} rows: {result.judgments_created} comparisons imported, "
            f"{result.already_imported} already imported, "
            f"{sum(result.skipped.values())} skipped; {result.prompts_created} new prompts."
        )
        for reason, count in sorted(result.skipped.items()):
            lines = ", ".join(map(str, result.skipped_lines.get(reason, [])))
            self.stdout.write(
                f"  skipped {count}: {SKIP_REASONS.get(reason, reason)} (e.g. lines {lines})"
            )
        if not result.judgments_created and not result.already_imported:
            self.stderr.write(f"Nothing was imported: is {options['file']} really in {fmt} format?")
