import json

import pytest

from apps.collection.models import Completion, PolicyVersion, Task
from apps.collection.samples import tasks_create_from_samples
from apps.core.errors import InvalidInput
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db


def write_samples(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_samples_become_tasks_with_provenance_once(project, tmp_path):
    project.k = 3
    project.save()
    prompts = [PromptFactory(project=project) for _ in range(2)]
    policy = PolicyVersion.objects.create(project=project, name="base")
    rows = [
        {
            # The trainer writes ids as strings (prompts.jsonl ids are opaque to it).
            "prompt_id": str(p.pk) if i % 2 else p.pk,
            "prompt": p.text,
            "index": i,
            "completion": f"answer {i} of {p.pk}",
            "seed": 1000 + i,
            "sampling": {"temperature": 0.8, "top_p": 0.95},
            "model": "var/models/base",
            "finish_reason": "eos",
        }
        for p in prompts
        for i in range(4)
    ]
    path = write_samples(tmp_path / "samples.jsonl", rows)
    tasks = tasks_create_from_samples(
        project=project, policy_version=policy, samples_path=path, round_number=1
    )
    assert len(tasks) == 2
    assert all(t.task_completions.count() == 3 and t.round_number == 1 for t in tasks)
    completion = Completion.objects.get(text=f"answer 0 of {prompts[0].pk}")
    assert completion.policy_version == policy and completion.seed == 1000
    assert completion.source == "policy" and completion.round_number == 1
    assert completion.sampling_params["temperature"] == 0.8
    assert completion.sampling_params["finish_reason"] == "eos"
    again = tasks_create_from_samples(
        project=project, policy_version=policy, samples_path=path, round_number=1
    )
    assert again == [] and Task.objects.count() == 2


def test_a_malformed_samples_file_creates_nothing(project, tmp_path):
    prompt = PromptFactory(project=project)
    policy = PolicyVersion.objects.create(project=project, name="base")
    path = tmp_path / "samples.jsonl"
    path.write_text(
        json.dumps({"prompt_id": prompt.pk, "completion": "ok"}) + "\n" + '{"prompt_id": "x"}\n'
    )
    with pytest.raises(InvalidInput, match="line 2"):
        tasks_create_from_samples(project=project, policy_version=policy, samples_path=path)
    assert Completion.objects.count() == 0


def test_a_plan_chooses_the_samples_shown_and_the_priority(project, tmp_path):
    from apps.loop.selection import TaskPlan

    project.k = 2
    project.save()
    prompt = PromptFactory(project=project)
    policy = PolicyVersion.objects.create(project=project, name="base")
    rows = [
        {"prompt_id": prompt.pk, "index": i, "completion": f"answer {i}", "reward": 0.5 * i}
        for i in range(5)
    ]
    path = write_samples(tmp_path / "samples.jsonl", rows)
    plan = {prompt.pk: TaskPlan(shown=[1, 3], priority=740, uncertainty=0.74)}
    (task,) = tasks_create_from_samples(
        project=project, policy_version=policy, samples_path=path, round_number=2, plans=plan
    )
    assert task.priority == 740
    shown = [tc.completion for tc in task.task_completions.order_by("position")]
    assert [c.text for c in shown] == ["answer 1", "answer 3"]
    assert [c.sampling_params["reward"] for c in shown] == [0.5, 1.5]
    assert Completion.objects.filter(prompt=prompt).count() == 2
