"""Token authentication that reads the token, its user and the user's roles in one query."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from apps.core.roles import remember_roles


def _token_user_sql() -> tuple[str, list[str]]:
    """SQL giving the token's user, one row per group or project role the user holds
    (NULL when none): (user columns..., name, held through a group)."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    fields = [field.attname for field in user_model._meta.concrete_fields]
    columns = ", ".join(f"u.{quote(f.column)}" for f in user_model._meta.concrete_fields)
    user_groups = user_model.groups.through._meta.db_table
    memberships = apps.get_model("collection", "ProjectMembership")._meta.db_table
    sql = f"""
        SELECT {columns}, r.name, r.via_group
        FROM {quote(Token._meta.db_table)} t
        JOIN {quote(user_model._meta.db_table)} u ON u.id = t.user_id
        LEFT JOIN (
            SELECT ug.user_id, g.name, 1 AS via_group
            FROM {quote(user_groups)} ug JOIN {quote(Group._meta.db_table)} g ON g.id = ug.group_id
            UNION ALL
            SELECT m.user_id, m.role, 0 FROM {quote(memberships)} m
        ) r ON r.user_id = u.id
        WHERE t.key = %s"""
    return sql, fields


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`, with the roles read alongside the user.

    Every API call checks a role right after authenticating; one statement for token, user,
    groups and project roles (instead of three ORM queries) is a measurable share of a
    rater's `next`.
    """

    def authenticate_credentials(self, key):
        sql, fields = _token_user_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, [key])
            rows = cursor.fetchall()
        if not rows:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = get_user_model().from_db(connection.alias, fields, rows[0][:-2])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        remember_roles(user, [(row[-2], bool(row[-1])) for row in rows if row[-2] is not None])
        return user, Token(key=key, user=user)
