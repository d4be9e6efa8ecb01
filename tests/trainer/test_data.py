import gzip
import json
from pathlib import Path

import pytest

from trainer.data import (
    DataError,
    read_demonstrations,
    read_hh_rlhf,
    read_prompts,
    read_rankings,
    read_texts,
    split_hh_rlhf,
)

HH_RLHF = Path(__file__).resolve().parents[3] / "shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rankings_roundtrip_with_ties_and_weight(tmp_path):
    row = {
        "prompt": "p",
        "completions": ["a", "b", "c"],
        "ranking": [[1], [0, 2]],
        "rater": "r7",
        "task_id": 3,
        "judgment_id": 9,
        "policy_versions": ["base"],
        "weight": 0.5,
    }
    (ranking,) = read_rankings(write(tmp_path / "r.jsonl", [json.dumps(row)]))
    assert ranking.ranks == [1, 0, 1]
    assert ranking.strict_pairs() == [(1, 0), (1, 2)]
    assert ranking.weight == 0.5
    assert ranking.rater == "r7" and ranking.policy_versions == ["base"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"prompt": "p", "completions": ["a", "b"], "ranking": [[0], [0]]}',
            "every completion index 0..1 exactly once",
        ),
        ('{"prompt": "p", "completions": ["a"], "ranking": [[0]]}', "at least 2 strings"),
        ('{"completions": ["a", "b"], "ranking": [[0], [1]]}', "missing field 'prompt'"),
        ('{"prompt": "p", "completions": ["a", "b"], "ranking": [0, 1]}', "best-first groups"),
        (
            '{"prompt": "p", "completions": ["a", "b"], "ranking": [[0], [1]], "weight": -1}',
            "'weight' must be a non-negative number",
        ),
        ('{"prompt": "p", "completions": ["a", "b"], "ranking": [[0], [1]]', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_ranking_names_file_line_and_expectation(tmp_path, line, message):
    good = '{"prompt": "p", "completions": ["a", "b"], "ranking": [[0], [1]]}'
    path = write(tmp_path / "rankings.jsonl", [good, "", line])
    with pytest.raises(DataError) as info:
        read_rankings(path)
    assert f"{path}:3:" in str(info.value)
    assert message in str(info.value)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_rankings(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no demonstrations found"):
        read_demonstrations(write(tmp_path / "d.jsonl", [""]))


def test_prompts_split_filter_duplicates_and_reference(tmp_path):
    rows = [
        {"id": 1, "prompt": "a", "category": "open QA", "split": "train"},
        {"id": "2", "prompt": "b", "category": "chat", "split": "test", "reference": "x"},
    ]
    path = write(tmp_path / "p.jsonl", [json.dumps(r) for r in rows])
    assert [p.id for p in read_prompts(path)] == ["1", "2"]
    (test_prompt,) = read_prompts(path, split="test")
    assert (test_prompt.category, test_prompt.reference) == ("chat", "x")
    duplicate = write(tmp_path / "dup.jsonl", [json.dumps(rows[0]), json.dumps(rows[0])])
    with pytest.raises(DataError, match=r"dup.jsonl:2: duplicate prompt id '1'"):
        read_prompts(duplicate)


def test_ptx_texts_accept_text_or_demonstrations(tmp_path):
    path = write(tmp_path / "t.jsonl", ['{"text": "hello"}', '{"prompt": "Q ", "completion": "A"}'])
    assert read_texts(path) == ["hello", "Q A"]
    with pytest.raises(DataError, match=r"t2.jsonl:1: expected a 'text' field"):
        read_texts(write(tmp_path / "t2.jsonl", ['{"body": "x"}']))


def test_reads_real_hh_rlhf_pairs_into_rankings():
    rankings, skipped = read_hh_rlhf(HH_RLHF)
    with gzip.open(HH_RLHF, "rt") as handle:
        first = json.loads(handle.readline())
    # 2,312 rows: 5 dialogues differ before the final turn and 4 have an empty answer
    # (the same rows the web side's importer skips)
    assert (len(rankings), skipped) == (2303, 9)
    head = rankings[0]
    assert head.ranking == [[0], [1]]
    assert head.prompt.endswith("\n\nAssistant:")
    assert head.prompt + head.completions[0] == first["chosen"]
    assert head.prompt + head.completions[1] == first["rejected"]
    assert all(r.k == 2 and r.prompt.startswith("\n\nHuman:") for r in rankings)
    assert all(c.strip() for r in rankings for c in r.completions)


def test_hh_rlhf_pair_that_is_no_comparison_is_skipped_with_its_reason():
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: ok?\n\nAssistant: yes"
    assert split_hh_rlhf(chosen, chosen.replace("ok?", "fine?")) == "diverging_context"
    assert split_hh_rlhf(chosen, chosen[: -len(" yes")] + " ") == "empty_completion"
    assert split_hh_rlhf(chosen, chosen + " ") == "identical_completions"
    assert split_hh_rlhf(chosen, chosen + "\n\nHuman: and?") == "no_assistant_turn"
    prompt, better, worse = split_hh_rlhf(chosen, chosen.replace("yes", "no"))
    assert (better, worse) == (" yes", " no")
    assert prompt + better == chosen  # the parts as written: the transcript again
