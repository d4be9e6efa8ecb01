import json
from io import StringIO

import pytest
from django.core.management import call_command

from apps.collection import demo
from apps.collection.models import Category, Project, Prompt, Task

pytestmark = pytest.mark.django_db


def test_seed_demo_is_repeatable_and_covers_every_category(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEBUG = True
    call_command("seed_demo", "--no-sampling", stdout=StringIO())
    call_command("seed_demo", "--no-sampling", stdout=StringIO())
    project = Project.objects.get(slug="demo")
    assert Prompt.objects.filter(project=project).count() == 252
    splits = list(project.prompts.values_list("split", flat=True))
    # 36 test prompts for a win rate, held-out prompts in every round's share of the rest
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (180, 36, 36)
    categories = set(project.prompts.values_list("category", flat=True))
    assert categories == set(Category.values) - {"other"}
    assert project.tasks.filter(kind=Task.Kind.DEMONSTRATION).count() == 6
    assert not project.tasks.filter(kind=Task.Kind.RANKING).exists()
    assert "Ouyang" in project.guidelines
    roles = set(project.memberships.values_list("user__username", "role"))
    assert roles == {
        ("labeler", "labeler"),
        ("labeler2", "labeler"),
        ("reviewer", "reviewer"),
        ("researcher", "researcher"),
    }


def test_cached_samples_become_ranking_tasks(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    seeded = demo.demo_seed()
    assert seeded.sampling_needed
    prompts = demo.demo_prompts_file(seeded.project)
    rows = [json.loads(line) for line in prompts.read_text().splitlines()]
    assert len(rows) == 36 and all(row["split"] == "train" for row in rows)
    samples = demo.samples_path()
    samples.parent.mkdir(parents=True, exist_ok=True)
    samples.write_text(
        "".join(
            json.dumps({"prompt_id": row["id"], "completion": f"c{i}", "index": i}) + "\n"
            for row in rows
            for i in range(4)
        )
    )
    again = demo.demo_seed()
    assert not again.sampling_needed
    assert again.tasks_created == 36
    assert seeded.project.tasks.filter(kind=Task.Kind.RANKING).count() == 36
