"""manage.py import_prompts / import_preferences, including the real HH-RLHF test file."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.collection.models import Completion, Judgment, Prompt, Task, TaskCompletion

pytestmark = pytest.mark.django_db

HH_RLHF = Path(__file__).resolve().parents[3] / "shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_import_prompts_jsonl_and_again_is_a_no_op(project, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"prompt": "Name three rivers.", "category": "brainstorming", "split": "test"})
        + "\n"
        + json.dumps({"text": "Summarise: the cat sat.", "category": "Summarization", "id": "x9"})
        + "\n"
    )
    assert "2 added" in run("import_prompts", project.slug, str(path))
    assert "0 added" in run("import_prompts", str(project.pk), str(path))
    rivers = Prompt.objects.get(text="Name three rivers.")
    assert (rivers.category, rivers.split, rivers.source) == ("brainstorming", "test", "imported")
    assert Prompt.objects.get(external_id="x9").category == "summarization"
    assert Prompt.objects.count() == 2


def test_import_prompts_csv(project, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,category,split\nWhat is 2+2?,closed QA,valid\nWrite a haiku.,,\n")
    run("import_prompts", project.slug, str(path))
    assert dict(Prompt.objects.values_list("text", "category")) == {
        "What is 2+2?": "closed_qa",
        "Write a haiku.": "other",
    }


def test_a_malformed_prompt_file_names_the_line_and_imports_nothing(project, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "fine"}\n{"prompt": "fine too"}\n{"prompt": 7}\n')
    with pytest.raises(CommandError, match="line 3"):
        run("import_prompts", project.slug, str(path))
    assert Prompt.objects.count() == 0


def test_unknown_project_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No project"):
        run("import_prompts", "nope", str(tmp_path / "x.jsonl"))


def test_pairs_format(project, tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": "Capital of France?", "chosen": "It is Paris.", "rejected": "Lyon."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run("import_preferences", project.slug, str(path), "--format", "pairs")
    assert "2 comparisons imported" in out
    assert Prompt.objects.count() == 1 and Task.objects.count() == 2
    for judgment in Judgment.objects.select_related("task"):
        chosen_id, rejected_id = (g[0] for g in judgment.ranking)
        assert Completion.objects.get(pk=rejected_id).text == "Lyon."
        assert Completion.objects.get(pk=chosen_id).text in {"Paris.", "It is Paris."}
        assert judgment.source == "imported" and judgment.review_status == "approved"


def test_a_malformed_preference_file_imports_nothing(project, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\nnot json\n')
    with pytest.raises(CommandError, match="line 2"):
        run("import_preferences", project.slug, str(path), "--format", "pairs")
    assert Judgment.objects.count() == Prompt.objects.count() == Completion.objects.count() == 0


@pytest.mark.slow
def test_real_hh_rlhf_file(project):
    out = run("import_preferences", project.slug, str(HH_RLHF), "--format", "hh-rlhf")
    # 2,312 rows: 5 whose conversations differ before the final turn, 4 with an empty answer.
    assert "Read 2312 rows: 2303 comparisons imported, 0 already imported, 9 skipped" in out
    assert "skipped 5: the two transcripts differ before the final Assistant turn" in out
    assert "skipped 4: a final answer is empty" in out
    assert Judgment.objects.filter(source="imported").count() == 2303
    assert Task.objects.count() == 2303 and TaskCompletion.objects.count() == 4606
    assert Completion.objects.count() == 4606
    # Two conversations appear twice in the file: 2,303 comparisons share 2,301 prompts.
    assert Prompt.objects.count() == 2301
    # Spot check: the first row of the file.
    prompt = Prompt.objects.get(text__startswith="Human: what are some pranks with a pen i can do?")
    assert prompt.text.endswith("do not have anything to do with pens\n\nAssistant:")
    assert prompt.category == "chat"
    judgment = Judgment.objects.get(task__prompt=prompt)
    chosen = Completion.objects.get(pk=judgment.ranking[0][0])
    assert chosen.text == (
        "No, sorry!  All of these involve a pen, the point is that you can get funny results "
        "by doing pranks with pens."
    )
    assert chosen.sampling_params == {"dataset": "harmless-base-test.jsonl.gz", "line": 1}
    # Importing the same file again adds nothing.
    again = run("import_preferences", project.slug, str(HH_RLHF), "--format", "hh-rlhf")
    assert "0 comparisons imported, 2303 already imported" in again
    assert Judgment.objects.count() == 2303
