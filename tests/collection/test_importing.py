"""Parsing of prompt and preference files (apps/collection/importing.py): no database."""

import gzip
import json
import pickle
from collections import Counter
from pathlib import Path

import pytest

from apps.collection.flags import DEFAULT_FLAGS
from apps.collection.importing import (
    PROMPT_CATEGORIES,
    ImportFileError,
    PreferenceRecord,
    PromptRecord,
    normalize_category,
    read_preference_records,
    read_prompt_records,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "apps" / "collection" / "demo"
HH_RLHF_FILE = REPO_ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
DEMO_CATEGORIES = [c for c in PROMPT_CATEGORIES if c != "other"]


def write_text(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def hh(*turns: str) -> str:
    """An HH-RLHF transcript from alternating Human/Assistant turns."""
    speakers = ("Human", "Assistant")
    return "".join(f"\n\n{speakers[i % 2]}: {turn}" for i, turn in enumerate(turns))


# --- prompts: JSONL ---------------------------------------------------------------------------


def test_jsonl_prompts_with_all_fields_and_defaults(tmp_path):
    path = write_text(
        tmp_path / "prompts.jsonl",
        jsonl(
            {
                "id": "p-1",
                "prompt": "  What is 2 + 2?  ",
                "category": "closed_qa",
                "split": "test",
                "reference": "4",
            },
            {"text": "Write a haiku about rain.", "id": 17, "extra": "ignored"},
        )
        + "\n   \n"
        + jsonl({"prompt": "Suggest names for a dog.", "category": "brainstorming"}),
    )

    records = read_prompt_records(path)

    assert records == [
        PromptRecord(
            text="What is 2 + 2?",
            category="closed_qa",
            split="test",
            external_id="p-1",
            reference="4",
            line=1,
        ),
        PromptRecord(text="Write a haiku about rain.", external_id="17", line=2),
        PromptRecord(text="Suggest names for a dog.", category="brainstorming", line=5),
    ]
    assert records[1].category == "other" and records[1].split == "train"
    assert records[1].reference is None


@pytest.mark.parametrize(
    ("spelling", "category"),
    [
        ("open QA", "open_qa"),
        ("Open QA", "open_qa"),
        ("Closed QA", "closed_qa"),
        ("closed-qa", "closed_qa"),
        ("CLOSED_QA", "closed_qa"),
        ("OpenQA", "open_qa"),
        ("  Brainstorming ", "brainstorming"),
        ("Summarization", "summarization"),
        ("summarisation", "summarization"),
        ("Extract", "extraction"),
        ("Other", "other"),
    ],
)
def test_category_spellings_are_normalised(tmp_path, spelling, category):
    path = write_text(tmp_path / "p.jsonl", jsonl({"prompt": "x", "category": spelling}))
    assert read_prompt_records(path)[0].category == category
    assert normalize_category(spelling) == category


@pytest.mark.parametrize(
    ("given", "split"),
    [("Train", "train"), ("valid", "valid"), ("Validation", "valid"), ("TEST", "test")],
)
def test_split_spellings_are_normalised(tmp_path, given, split):
    path = write_text(tmp_path / "p.jsonl", jsonl({"prompt": "x", "split": given}))
    assert read_prompt_records(path)[0].split == split


def test_empty_or_null_category_and_split_mean_the_defaults(tmp_path):
    path = write_text(
        tmp_path / "p.jsonl",
        jsonl({"prompt": "a", "category": "", "split": None}, {"prompt": "b", "category": None}),
    )
    assert [(r.category, r.split) for r in read_prompt_records(path)] == [
        ("other", "train"),
        ("other", "train"),
    ]


def test_gzipped_jsonl_prompts(tmp_path):
    path = write_text(
        tmp_path / "prompts.jsonl.gz",
        jsonl({"prompt": "Hello", "category": "chat"}, {"prompt": "Bye"}),
    )
    assert [(r.text, r.category, r.line) for r in read_prompt_records(path)] == [
        ("Hello", "chat", 1),
        ("Bye", "other", 2),
    ]


# --- prompts: CSV -----------------------------------------------------------------------------


def test_csv_prompts_with_quoted_newlines_blank_rows_and_bom(tmp_path):
    path = write_text(
        tmp_path / "prompts.csv",
        "\ufeffID, Prompt ,Category,Split,Reference\r\n"
        "a1,Name three colours.,Brainstorming,train,\r\n"
        "\r\n"
        'a2,"Summarize:\nThe cat sat.\nThe dog ran.",summarization,Valid,"Animals moved."\r\n'
        ",,,,\r\n"
        'a3,"Say ""hi""",,,\r\n'
        "a4,Short row\r\n",
    )

    records = read_prompt_records(path)

    assert records == [
        PromptRecord("Name three colours.", "brainstorming", "train", "a1", None, line=2),
        PromptRecord(
            "Summarize:\nThe cat sat.\nThe dog ran.",
            "summarization",
            "valid",
            "a2",
            "Animals moved.",
            line=4,
        ),
        PromptRecord('Say "hi"', "other", "train", "a3", None, line=8),
        PromptRecord("Short row", "other", "train", "a4", None, line=9),
    ]


def test_csv_with_a_text_column_instead_of_prompt(tmp_path):
    path = write_text(tmp_path / "p.csv", "text,category\nWhat is rain?,open QA\n")
    assert read_prompt_records(path) == [PromptRecord("What is rain?", "open_qa", line=2)]


def test_gzipped_csv_prompts(tmp_path):
    path = write_text(tmp_path / "prompts.csv.gz", "prompt,split\nOne,test\nTwo,\n")
    assert [(r.text, r.split, r.line) for r in read_prompt_records(path)] == [
        ("One", "test", 2),
        ("Two", "train", 3),
    ]


# --- prompts: malformed files -----------------------------------------------------------------

GOOD = json.dumps({"prompt": "fine"}) + "\n"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "prompts.jsonl",
            GOOD * 5 + "\n" + json.dumps({"category": "chat"}) + "\n" + GOOD,
            'prompts.jsonl line 7: expected a JSON object with a "prompt" string',
        ),
        (
            "prompts.jsonl",
            GOOD * 2 + '{"prompt": "unterminated\n',
            "prompts.jsonl line 3: invalid JSON (Unterminated string starting at)",
        ),
        (
            "p.jsonl",
            GOOD + '["prompt", "x"]\n',
            "p.jsonl line 2: expected a JSON object, found an array",
        ),
        ("p.jsonl", GOOD + "42\n", "p.jsonl line 2: expected a JSON object, found a number"),
        ("p.jsonl", '{"prompt": 42}\n', 'p.jsonl line 1: "prompt" must be a string, not a number'),
        ("p.jsonl", '{"text": ["a"]}\n', 'p.jsonl line 1: "text" must be a string, not an array'),
        ("p.jsonl", GOOD + '{"prompt": "   "}\n', 'p.jsonl line 2: "prompt" is empty'),
        (
            "p.jsonl",
            GOOD + '{"prompt": "x", "category": "poetry"}\n',
            'p.jsonl line 2: unknown category "poetry"; expected one of generation, open_qa, '
            "brainstorming, chat, rewrite, summarization, classification, closed_qa, "
            "extraction, other",
        ),
        (
            "p.jsonl",
            '{"prompt": "x", "category": 3}\n',
            'p.jsonl line 1: "category" must be a string, not a number',
        ),
        (
            "p.jsonl",
            GOOD * 3 + '{"prompt": "x", "split": "holdout"}\n',
            'p.jsonl line 4: unknown split "holdout"; expected one of train, valid, test',
        ),
        (
            "p.jsonl",
            '{"prompt": "x", "split": false}\n',
            'p.jsonl line 1: "split" must be a string, not a boolean',
        ),
        (
            "p.jsonl",
            '{"prompt": "x", "id": {"a": 1}}\n',
            'p.jsonl line 1: "id" must be a string or an integer, not an object',
        ),
        (
            "p.jsonl",
            '{"prompt": "x", "id": true}\n',
            'p.jsonl line 1: "id" must be a string or an integer, not a boolean',
        ),
        (
            "p.jsonl",
            '{"prompt": "x", "reference": 4}\n',
            'p.jsonl line 1: "reference" must be a string, not a number',
        ),
        (
            "p.jsonl",
            '{"prompt": "a", "id": "x"}\n\n{"prompt": "b", "id": "x"}\n',
            'p.jsonl line 3: duplicate id "x" (first used on line 1)',
        ),
        (
            "p.csv",
            "question,category\nWhat?,open_qa\n",
            'p.csv line 1: the CSV header has no "prompt" (or "text") column',
        ),
        (
            "p.csv",
            "\n\nid,category\n",
            'p.csv line 3: the CSV header has no "prompt" (or "text") column',
        ),
        ("p.csv", "prompt,category\nfine,chat\n,chat\n", 'p.csv line 3: "prompt" is empty'),
        (
            "p.csv",
            "prompt,split\nfine,train\nx,train,extra\n",
            "p.csv line 3: expected 2 columns, found 3",
        ),
        (
            "p.csv",
            "prompt,split\nfine,train\nx,later\n",
            'p.csv line 3: unknown split "later"; expected one of train, valid, test',
        ),
        (
            "p.csv",
            'prompt,split\nfine,train\n"bad"quote,train\n',
            "p.csv line 3: malformed CSV (',' expected after '\"')",
        ),
        (
            "p.csv",
            'prompt\nfine\n"never closed\n',
            "p.csv line 3: malformed CSV (unexpected end of data)",
        ),
        ("p.jsonl", "", "p.jsonl: the file contains no prompts"),
        ("p.jsonl", "\n  \n\n", "p.jsonl: the file contains no prompts"),
        ("p.csv", "prompt,category\n", "p.csv: the file contains no prompts"),
        ("p.csv", "", "p.csv: the file contains no prompts"),
        ("p.jsonl.gz", "", "p.jsonl.gz: the file contains no prompts"),
        ("p.json", GOOD, "p.json: unsupported file type; expected .jsonl or .csv (optionally .gz)"),
        (
            "p.txt.gz",
            GOOD,
            "p.txt.gz: unsupported file type; expected .jsonl or .csv (optionally .gz)",
        ),
    ],
)
def test_malformed_prompt_files_raise_with_the_line(tmp_path, name, content, expected):
    path = write_text(tmp_path / name, content)
    with pytest.raises(ImportFileError) as caught:
        read_prompt_records(path)
    assert str(caught.value).startswith(expected)
    assert caught.value.path == path


def test_error_carries_path_line_and_message_and_pickles(tmp_path):
    path = write_text(tmp_path / "prompts.jsonl", GOOD + "{oops\n")
    with pytest.raises(ImportFileError) as caught:
        read_prompt_records(path)
    error = caught.value
    assert (error.path, error.line) == (path, 2)
    assert error.message.startswith("invalid JSON")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, copy.message, str(copy)) == (
        error.path,
        error.line,
        error.message,
        str(error),
    )
    assert isinstance(error, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(ImportFileError, match=r"^nowhere\.jsonl: file not found$") as caught:
        read_prompt_records(tmp_path / "nowhere.jsonl")
    assert caught.value.line is None


def test_directory_is_unreadable(tmp_path):
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(ImportFileError, match=r"^folder\.jsonl: cannot read the file"):
        read_prompt_records(folder)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(ImportFileError, match=r"^p\.jsonl\.gz: not a valid gzip file$"):
        read_prompt_records(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress((GOOD * 100).encode())[:-12])
    with pytest.raises(ImportFileError, match=r"^p\.jsonl\.gz: not a valid gzip file$"):
        read_prompt_records(path)


def test_invalid_utf8_names_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(GOOD.encode() * 2 + b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(ImportFileError) as caught:
        read_prompt_records(path)
    assert str(caught.value) == "p.jsonl line 3: the file is not valid UTF-8 text"


def test_unicode_line_separators_inside_json_strings_do_not_split_lines(tmp_path):
    path = write_text(
        tmp_path / "p.jsonl",
        json.dumps({"prompt": "one\u2028two\x85three"}, ensure_ascii=False) + "\n" + GOOD,
    )
    records = read_prompt_records(path)
    assert [(r.text, r.line) for r in records] == [("one\u2028two\x85three", 1), ("fine", 2)]


# --- preferences: TRL pairs -------------------------------------------------------------------


def test_pairs_are_read_and_unusable_rows_counted(tmp_path):
    path = write_text(
        tmp_path / "pairs.jsonl",
        jsonl(
            {"prompt": "Say hi.", "chosen": " Hi! ", "rejected": "Go away."},
            {"prompt": "Same?", "chosen": "yes", "rejected": " yes\n"},
            {"prompt": "Empty?", "chosen": "   ", "rejected": "no"},
        )
        + "\n"
        + jsonl({"prompt": "Count.", "chosen": "1 2 3", "rejected": "3 2 1", "score": 1}),
    )

    result = read_preference_records(path, "pairs")

    assert result.records == [
        PreferenceRecord("Say hi.", "Hi!", "Go away.", line=1),
        PreferenceRecord("Count.", "1 2 3", "3 2 1", line=5),
    ]
    assert result.skipped == Counter({"identical_completions": 1, "empty_completion": 1})
    assert result.skipped_lines == {"identical_completions": [2], "empty_completion": [3]}
    assert result.rows_read == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n',
            'pairs.jsonl line 2: expected a JSON object with string fields "prompt", "chosen", '
            '"rejected"; "rejected" is missing',
        ),
        (
            '{"chosen": "a", "rejected": "b"}\n',
            'pairs.jsonl line 1: expected a JSON object with string fields "prompt", "chosen", '
            '"rejected"; "prompt" is missing',
        ),
        (
            '{"prompt": "p", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}\n',
            'pairs.jsonl line 1: expected a JSON object with string fields "prompt", "chosen", '
            '"rejected"; "chosen" is an array',
        ),
        (
            '{"prompt": "p", "chosen": "a", "rejected": "b"}\nnot json\n',
            "pairs.jsonl line 2: invalid JSON",
        ),
        ("\n\n", "pairs.jsonl: the file contains no rows"),
        (
            jsonl(
                {"prompt": "p", "chosen": "a", "rejected": "b"},
                {"prompt": " ", "chosen": "a", "rejected": "b"},
            ),
            'pairs.jsonl line 2: "prompt" is empty',
        ),
    ],
)
def test_malformed_pairs_raise_with_the_line(tmp_path, content, expected):
    path = write_text(tmp_path / "pairs.jsonl", content)
    with pytest.raises(ImportFileError) as caught:
        read_preference_records(path, "pairs")
    assert str(caught.value).startswith(expected)


def test_preferences_must_be_jsonl(tmp_path):
    path = write_text(tmp_path / "pairs.csv", "prompt,chosen,rejected\np,a,b\n")
    with pytest.raises(ImportFileError, match=r"^pairs\.csv: preference files must be JSONL"):
        read_preference_records(path, "pairs")


def test_unknown_preference_format_is_a_programming_error(tmp_path):
    path = write_text(tmp_path / "pairs.jsonl", GOOD)
    with pytest.raises(ValueError, match="unknown preference format 'ultrafeedback'"):
        read_preference_records(path, "ultrafeedback")  # type: ignore[arg-type]


# --- preferences: HH-RLHF ---------------------------------------------------------------------


def test_hh_rlhf_splits_the_shared_conversation_from_the_final_answers(tmp_path):
    context = ("How do I boil an egg?", "Put it in boiling water.", "For how long?")
    path = write_text(
        tmp_path / "hh.jsonl.gz",
        jsonl(
            {
                "chosen": hh(*context, "About nine minutes for a firm yolk.\n"),
                "rejected": hh(*context, "  Forever. "),
            }
        ),
    )

    result = read_preference_records(path, "hh-rlhf")

    assert result.records == [
        PreferenceRecord(
            prompt="Human: How do I boil an egg?\n\nAssistant: Put it in boiling water."
            "\n\nHuman: For how long?\n\nAssistant:",
            chosen="About nine minutes for a firm yolk.",
            rejected="Forever.",
            line=1,
        )
    ]
    assert result.skipped == Counter()
    assert result.rows_read == 1


def test_hh_rlhf_skip_reasons(tmp_path):
    rows = [
        {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "Go away.")},  # kept
        {"chosen": hh("Hi"), "rejected": hh("Hi", "Hello!")},  # no Assistant turn
        {"chosen": hh("Hi", "Hello!", "Bye"), "rejected": hh("Hi", "Hello!")},  # ends on Human
        {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hey", "Hello!")},  # diverging
        {"chosen": hh("Hi", "a", "More", "b"), "rejected": hh("Hi", "c", "More", "d")},  # diverging
        {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "Hello!  ")},  # identical
        {"chosen": hh("Hi", ""), "rejected": hh("Hi", "Hello!")},  # empty
        {"chosen": hh("Hi", ""), "rejected": hh("Hi", "")},  # empty, and identical
    ]
    path = write_text(tmp_path / "hh.jsonl", jsonl(*rows))

    result = read_preference_records(path, "hh-rlhf")

    assert [r.line for r in result.records] == [1]
    assert result.skipped == Counter(
        no_assistant_turn=2, diverging_context=2, identical_completions=1, empty_completion=2
    )
    assert result.skipped_lines == {
        "no_assistant_turn": [2, 3],
        "diverging_context": [4, 5],
        "identical_completions": [6],
        "empty_completion": [7, 8],
    }
    assert result.rows_read == 8


def test_hh_rlhf_keeps_only_the_first_few_skipped_lines_per_reason(tmp_path):
    same = {"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "Hello!")}
    path = write_text(tmp_path / "hh.jsonl", jsonl(*[same] * 12))
    result = read_preference_records(path, "hh-rlhf")
    assert result.skipped == Counter(identical_completions=12)
    assert result.skipped_lines == {"identical_completions": [1, 2, 3, 4, 5]}
    assert result.records == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            json.dumps({"chosen": hh("a", "b")}) + "\n",
            'hh.jsonl line 1: expected a JSON object with string fields "chosen", "rejected"; '
            '"rejected" is missing',
        ),
        (
            jsonl(
                {"chosen": hh("a", "b"), "rejected": hh("a", "c")}, {"chosen": 1, "rejected": "x"}
            ),
            'hh.jsonl line 2: expected a JSON object with string fields "chosen", "rejected"; '
            '"chosen" is a number',
        ),
        ("{bad json}\n", "hh.jsonl line 1: invalid JSON"),
    ],
)
def test_malformed_hh_rlhf_raises_with_the_line(tmp_path, content, expected):
    path = write_text(tmp_path / "hh.jsonl", content)
    with pytest.raises(ImportFileError) as caught:
        read_preference_records(path, "hh-rlhf")
    assert str(caught.value).startswith(expected)


@pytest.fixture(scope="module")
def harmless_base_test():
    return read_preference_records(HH_RLHF_FILE, "hh-rlhf")


def test_real_hh_rlhf_file_counts(harmless_base_test):
    result = harmless_base_test
    assert result.rows_read == 2312
    assert len(result.records) == 2303
    # The 5 rows the data README mentions, where the transcripts differ before the final turn.
    assert result.skipped == Counter(diverging_context=5, empty_completion=4)
    assert result.skipped_lines == {
        "empty_completion": [87, 517, 926, 1104],
        "diverging_context": [1255, 1689, 1951, 1953, 2037],
    }
    for record in result.records:
        assert record.prompt.startswith("Human: ")
        assert record.prompt.endswith("\n\nAssistant:")
        assert record.chosen and record.rejected and record.chosen != record.rejected
        assert record.chosen == record.chosen.strip()


def test_real_hh_rlhf_spot_check(harmless_base_test):
    first = harmless_base_test.records[0]
    assert first.line == 1
    assert first.prompt.startswith("Human: what are some pranks with a pen i can do?")
    assert first.prompt.endswith(
        "\n\nHuman: okay some of these do not have anything to do with pens\n\nAssistant:"
    )
    assert first.prompt.count("\n\nAssistant:") == 3
    assert first.chosen == (
        "No, sorry!  All of these involve a pen, the point is that you can get funny results "
        "by doing pranks with pens."
    )
    assert first.rejected.startswith("There are lots of funny things you can do with pens")


# --- demo content -----------------------------------------------------------------------------


def test_demo_prompts_parse_and_cover_every_category_and_split():
    records = read_prompt_records(DEMO_DIR / "prompts.jsonl")

    assert len(records) >= 48
    per_category = Counter(r.category for r in records)
    assert set(per_category) == set(DEMO_CATEGORIES)
    assert min(per_category.values()) >= 4
    splits = Counter(r.split for r in records)
    assert set(splits) == {"train", "valid", "test"}
    assert 0.6 <= splits["train"] / len(records) <= 0.8
    for category in DEMO_CATEGORIES:
        assert {r.split for r in records if r.category == category} == {"train", "valid", "test"}
    assert [r.external_id for r in records] == [f"demo-{n:03d}" for n in range(1, len(records) + 1)]
    with_reference = {"closed_qa", "extraction", "classification", "summarization"}
    for record in records:
        assert (record.reference is not None) == (record.category in with_reference), record
        # The demo policy is a 135M model on CPU: keep prompts short.
        assert len(record.text) <= 600, record.external_id


def test_demo_guidelines_describe_every_default_flag_and_the_likert_scale():
    guidelines = (DEMO_DIR / "guidelines.md").read_text(encoding="utf-8")
    for flag in DEFAULT_FLAGS:
        assert f"**{flag['label']}**" in guidelines, flag["key"]
    for score in range(1, 8):
        assert f"| {score} |" in guidelines
    assert "Ouyang et al." in guidelines and "appendix B" in guidelines
