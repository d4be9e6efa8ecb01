from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Raters and roles"

    def ready(self) -> None:
        from apps.accounts.roles_setup import role_groups_sync

        post_migrate.connect(role_groups_sync, dispatch_uid="prefloop_role_groups")
