"""Writes for raters and roles."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import RaterProfile
from apps.core.errors import InvalidInput
from apps.core.roles import Role, forget_roles


def rater_profile_get_or_create(*, user: AbstractUser, lock: bool = False) -> RaterProfile:
    """The user's rater profile, created on first use (with a fresh pseudonym).

    `lock=True` takes the profile row's lock for the rest of the transaction: the calls of
    one rater that change their standing or their leases run one at a time."""
    profiles = RaterProfile.objects.select_for_update() if lock else RaterProfile.objects
    profile, _ = profiles.get_or_create(user=user)
    return profile


@transaction.atomic
def rater_create(
    *,
    username: str,
    password: str,
    roles: Iterable[Role] = (Role.LABELER,),
    email: str = "",
    is_staff: bool = False,
) -> AbstractUser:
    """Create a user with the given roles and a rater profile. Usernames are unique, and the
    password must pass AUTH_PASSWORD_VALIDATORS."""
    user_model = get_user_model()
    if not username or not username.strip():
        raise InvalidInput("A username is required.", fields={"username": ["Required."]})
    if user_model.objects.filter(username=username).exists():
        raise InvalidInput(
            f"User {username!r} already exists.", fields={"username": ["Already taken."]}
        )
    candidate = user_model(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidInput(
            "The password is too weak: " + " ".join(exc.messages),
            fields={"password": list(exc.messages)},
        ) from None
    user = user_model.objects.create_user(
        username=username, password=password, email=email, is_staff=is_staff
    )
    user_roles_set(user=user, roles=roles)
    rater_profile_get_or_create(user=user)
    return user


def user_roles_set(*, user: AbstractUser, roles: Iterable[Role]) -> None:
    """Replace the user's PrefLoop roles (other groups are left alone)."""
    wanted = {Role(role) for role in roles}
    role_groups = {group.name: group for group in Group.objects.filter(name__in=list(Role))}
    missing = [role for role in wanted if role.value not in role_groups]
    for role in missing:
        role_groups[role.value] = Group.objects.create(name=role.value)
    user.groups.remove(*[g for name, g in role_groups.items() if Role(name) not in wanted])
    user.groups.add(*[role_groups[role.value] for role in wanted])
    forget_roles(user)
