"""`manage.py create_rater USERNAME --role labeler --password ...`"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import rater_create
from apps.accounts.tokens import api_token_create
from apps.collection.management.commands._project_arg import project_from_arg
from apps.collection.services import membership_add
from apps.core.errors import InvalidInput
from apps.core.roles import Role


class Command(BaseCommand):
    help = "Create a user with one or more PrefLoop roles (labeler, reviewer, researcher)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            action="append",
            choices=[role.value for role in Role],
            help="Repeat for several roles; default labeler.",
        )
        parser.add_argument(
            "--project",
            action="append",
            default=[],
            help="Slug or id of a project where the user gets each --role (repeatable).",
        )
        parser.add_argument("--password", help="Prompted for when omitted.")
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="May log into the admin.")
        parser.add_argument("--token", action="store_true", help="Print an API token.")

    def handle(self, *args, **options) -> None:
        password = options["password"] or getpass.getpass("Password: ")
        roles = [Role(r) for r in (options["role"] or [Role.LABELER.value])]
        projects = [project_from_arg(value) for value in options["project"]]
        try:
            user = rater_create(
                username=options["username"],
                password=password,
                roles=roles,
                email=options["email"],
                is_staff=options["staff"],
            )
        except InvalidInput as exc:
            raise CommandError(exc.message) from exc
        for project in projects:
            for role in roles:
                membership_add(project=project, user=user, role=role)
        where = f" in {', '.join(p.slug for p in projects)}" if projects else ""
        self.stdout.write(
            f"Created {user.username} with roles "
            f"{', '.join(sorted(r.value for r in roles))}{where}."
        )
        if options["token"]:
            self.stdout.write(f"API token: {api_token_create(user=user)}")
