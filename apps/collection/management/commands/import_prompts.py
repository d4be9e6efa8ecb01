"""`manage.py import_prompts PROJECT FILE` — JSONL or CSV (optionally .gz)."""

from django.core.management.base import BaseCommand, CommandError

from apps.collection.importers import prompt_records_import
from apps.collection.importing import ImportFileError, read_prompt_records

from ._project_arg import project_from_arg


class Command(BaseCommand):
    help = (
        "Import prompts from JSONL or CSV with fields prompt (or text), category, split, id, "
        "reference. A malformed file imports nothing and names the line."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="Project slug or id.")
        parser.add_argument("file")

    def handle(self, *args, **options) -> None:
        project = project_from_arg(options["project"])
        try:
            records = read_prompt_records(options["file"])
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        result = prompt_records_import(project=project, records=records)
        self.stdout.write(
            f"Read {len(records)} prompts: {len(result.created)} added to {project.slug}, "
            f"{len(result.existing)} already there."
        )
