"""factory_boy factories for PrefLoop's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from apps.accounts.models import RaterProfile
from apps.accounts.services import user_roles_set
from apps.collection.models import Completion, Project, Prompt, Task, TaskCompletion
from apps.core.roles import Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "pw-secret-123")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create:
            self.save()
            user_roles_set(user=self, roles=extracted if extracted is not None else [Role.LABELER])
            RaterProfile.objects.get_or_create(user=self)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    guidelines = "Rank the most helpful answer first."
    k = 4
    overlap = 3
    lease_seconds = 600


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    text = factory.Sequence(lambda n: f"Explain idea number {n} in one sentence.")
    category = "open_qa"


class CompletionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Completion

    prompt = factory.SubFactory(PromptFactory)
    text = factory.Sequence(lambda n: f"Answer {n}.")
    source = Completion.Source.PLACEHOLDER


def make_task(
    project: Project,
    *,
    k: int | None = None,
    kind: str = Task.Kind.RANKING,
    overlap: int | None = None,
    priority: int = 0,
    is_gold: bool = False,
    gold_ranking=None,
) -> Task:
    """A task with `k` fresh completions of a fresh prompt (none for demonstrations)."""
    prompt = PromptFactory(project=project)
    count = (
        0
        if kind == Task.Kind.DEMONSTRATION
        else (2 if kind == Task.Kind.EVALUATION else (k or project.k))
    )
    task = Task.objects.create(
        project=project,
        prompt=prompt,
        kind=kind,
        overlap=overlap or project.overlap,
        priority=priority,
        is_gold=is_gold,
    )
    completions = [CompletionFactory(prompt=prompt) for _ in range(count)]
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(completions)
    )
    if gold_ranking == "canonical":
        task.gold_ranking = [[c.pk] for c in completions]
        task.save(update_fields=["gold_ranking"])
    return task
