import json

import pytest

from tests.trainer.test_sft import sft_dir  # noqa: F401  (module fixture reused)
from trainer.data import DataError, write_jsonl
from trainer.evaluate import (
    EvalConfig,
    bootstrap_ci,
    evaluate,
    exact_match,
    grouped_win_rates,
    text_metrics,
    token_f1,
    win_values,
)


def test_token_f1_and_exact_match_by_hand():
    # normalised: pred [cat, sat], ref [cat, sat, down] -> P 1, R 2/3, F1 0.8
    assert token_f1("The cat sat.", "a cat sat down") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("cats", "cat") == 0.0


def test_text_metrics_use_rouge_and_sacrebleu():
    same = text_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same["rougeL"] == pytest.approx(1.0)
    assert same["bleu"] == pytest.approx(100.0)
    assert same["exact_match"] == 1.0
    # LCS "the cat" of 2 tokens: P 2/2, R 2/4 -> F 2/3
    partial = text_metrics(["the cat"], ["the cat sat down"])
    assert partial["rougeL"] == pytest.approx(2 / 3)
    assert partial["exact_match"] == 0.0


def test_win_values_and_bootstrap_ci():
    assert win_values([3, 1, 2], [1, 1, 5]) == [1.0, 0.5, 0.0]
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0, 1.0)
    mean, low, high = bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1], n_resamples=2000, seed=1)
    assert mean == 0.75
    assert 0.3 < low < mean < high <= 1.0
    assert bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1], n_resamples=2000, seed=1) == (mean, low, high)


def test_grouped_win_rates_by_category_and_seen_unseen():
    wins = [1.0, 1.0, 0.0, 0.5]
    categories = ["chat", "chat", "open QA", "rewrite"]
    result = grouped_win_rates(wins, categories, ["chat"], 200, 0.95, 0)
    assert result["overall"]["win_rate"] == pytest.approx(0.625)
    assert result["by_category"]["chat"] == {"win_rate": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 2}
    assert result["seen_categories"]["win_rate"] == 1.0
    assert result["unseen_categories"]["win_rate"] == 0.25
    assert result["unseen_categories"]["n"] == 2


@pytest.mark.slow
def test_eval_win_rate_against_reference_policy(sft_dir, tiny_dir, tmp_path):  # noqa: F811
    model_dir, _ = sft_dir
    prompts = tmp_path / "prompts.jsonl"
    write_jsonl(
        prompts,
        [
            {
                "id": "1",
                "prompt": "What is 2+3? ",
                "category": "closed QA",
                "split": "test",
                "reference": "42",
            },
            {
                "id": "2",
                "prompt": "What is 4+4? ",
                "category": "closed QA",
                "split": "test",
                "reference": "42",
            },
            {
                "id": "3",
                "prompt": "What is 1+5? ",
                "category": "chat",
                "split": "test",
                "reference": "forty two",
            },
            {"id": "4", "prompt": "unused", "category": "chat", "split": "train"},
        ],
    )
    # Judge: longer is better. Greedy SFT answers "42"; the random base runs to 16 tokens.
    metrics = evaluate(
        EvalConfig(
            out=str(tmp_path / "eval"),
            prompts=str(prompts),
            policy=str(model_dir),
            reference_policy=str(tiny_dir),
            score_fn="length",
            max_new_tokens=16,
            train_categories=["closed QA"],
            bootstrap_samples=200,
        )
    )
    assert metrics["win_rate"]["overall"] == {
        "win_rate": 0.0,
        "ci_low": 0.0,
        "ci_high": 0.0,
        "n": 3,
    }
    assert set(metrics["win_rate"]["by_category"]) == {"closed QA", "chat"}
    assert metrics["win_rate"]["unseen_categories"]["n"] == 1
    assert metrics["mean_score"]["policy"] == 2.0
    assert metrics["text_metrics"]["exact_match"] == pytest.approx(2 / 3)
    rows = [
        json.loads(line) for line in (tmp_path / "eval/completions.jsonl").read_text().splitlines()
    ]
    assert [r["completion"] for r in rows] == ["42", "42", "42"]
    assert all(r["win"] == 0.0 for r in rows)


def test_eval_reports_reward_model_accuracy_per_k(tiny_dir, tmp_path):
    from trainer import models

    rm_dir = tmp_path / "rm"
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    models.zero_head(model)  # every completion scores 0: no pair is ordered correctly
    models.save_model(model, tokenizer, rm_dir)
    write_jsonl(
        tmp_path / "rankings.jsonl",
        [
            {"prompt": "p", "completions": ["a", "b", "c"], "ranking": [[0], [1, 2]]},
            {"prompt": "q", "completions": ["a", "b"], "ranking": [[1], [0]]},
        ],
    )
    metrics = evaluate(
        EvalConfig(
            out=str(tmp_path / "eval"),
            reward_model=str(rm_dir),
            rankings=str(tmp_path / "rankings.jsonl"),
        )
    )
    result = metrics["reward_model"]
    assert result["pairs"] == 3  # 2 strict pairs in the tied K=3 ranking + 1 in the K=2 one
    assert result["accuracy"] == 0.0
    assert result["accuracy_by_k"] == {"2": 0.0, "3": 0.0}
    assert result["loss"] == pytest.approx(0.6931472, abs=1e-6)  # -log sigmoid(0)


def test_eval_checks_inputs_before_writing_anything(tiny_dir, tmp_path):
    from trainer.data import DataError

    (tmp_path / "prompts.jsonl").write_text('{"id": 1, "prompt": "ok"}\n{"id": 2}\n')
    out = tmp_path / "eval"
    with pytest.raises(DataError, match=r"prompts.jsonl:2: missing field 'prompt'"):
        evaluate(
            EvalConfig(out=str(out), prompts=str(tmp_path / "prompts.jsonl"), policy=str(tiny_dir))
        )
    with pytest.raises(DataError, match="not a model directory"):
        evaluate(
            EvalConfig(
                out=str(out),
                rankings=str(tmp_path / "r.jsonl"),
                reward_model=str(tmp_path / "nope"),
            )
        )
    with pytest.raises(DataError, match="needs a judge"):
        evaluate(
            EvalConfig(
                out=str(out),
                prompts=str(tmp_path / "prompts.jsonl"),
                policy=str(tiny_dir),
                reference_policy=str(tiny_dir),
            )
        )
    assert not out.exists()


def test_reward_model_judge_with_equal_scores_gives_ties(tiny_dir, tmp_path):
    from trainer import models

    rm_dir = tmp_path / "rm"
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    models.zero_head(model)
    model.config.reward_bias = 1.5
    models.save_model(model, tokenizer, rm_dir)
    write_jsonl(
        tmp_path / "prompts.jsonl",
        [{"id": i, "prompt": f"Q{i}", "category": "chat", "split": "test"} for i in range(3)],
    )
    metrics = evaluate(
        EvalConfig(
            out=str(tmp_path / "eval"),
            prompts=str(tmp_path / "prompts.jsonl"),
            policy=str(tiny_dir),
            reference_policy=str(tiny_dir),
            reward_model=str(rm_dir),
            max_new_tokens=4,
            bootstrap_samples=100,
        )
    )
    # every answer scores exactly the bias, so every comparison is a tie (0.5)
    assert metrics["mean_score"] == {"policy": 1.5, "reference": 1.5}
    assert metrics["win_rate"]["overall"] == {
        "win_rate": 0.5,
        "ci_low": 0.5,
        "ci_high": 0.5,
        "n": 3,
    }


def test_eval_judges_the_answers_of_an_earlier_eval_again(tiny_dir, tmp_path, monkeypatch):
    import trainer.evaluate as evaluate_module
    from trainer.scorers import digit_count

    prompts = tmp_path / "prompts.jsonl"
    write_jsonl(
        prompts,
        [{"id": i, "prompt": f"Q{i}", "category": "chat", "split": "test"} for i in range(4)],
    )
    common = dict(
        prompts=str(prompts),
        policy=str(tiny_dir),
        reference_policy=str(tiny_dir),
        max_new_tokens=6,
        temperature=1.0,
        bootstrap_samples=50,
    )
    first = tmp_path / "first"
    evaluate(
        EvalConfig(
            out=str(first),
            score_fn="length",
            min_new_tokens=3,
            seed=1,
            **common,
        )
    )
    answers = [json.loads(line) for line in (first / "completions.jsonl").read_text().splitlines()]
    assert all(row["sampling"]["min_new_tokens"] == 3 for row in answers)
    assert all(len(row["completion"]) >= 3 for row in answers)  # one character per token

    def no_generation(*args, **kwargs):
        raise AssertionError("answers were generated again")

    monkeypatch.setattr(evaluate_module, "_complete", no_generation)
    second = tmp_path / "second"
    metrics = evaluate(
        EvalConfig(
            out=str(second),
            score_fn="digit_count",
            completions=str(first / "completions.jsonl"),
            **common,
        )
    )
    again = [json.loads(line) for line in (second / "completions.jsonl").read_text().splitlines()]
    assert [(r["completion"], r["reference_completion"]) for r in again] == [
        (r["completion"], r["reference_completion"]) for r in answers
    ]
    assert [r["score"] for r in again] == digit_count([], [r["completion"] for r in answers])
    assert metrics["win_rate"]["overall"]["n"] == 4
    # answers for other prompts: refused before anything is written
    write_jsonl(prompts, [{"id": 9, "prompt": "Q9", "split": "test"}])
    with pytest.raises(DataError, match="no answer for prompt id"):
        evaluate(
            EvalConfig(
                out=str(tmp_path / "third"),
                score_fn="digit_count",
                completions=str(first / "completions.jsonl"),
                **common,
            )
        )
    assert not (tmp_path / "third").exists()


def test_ratio_bootstrap_ci_keeps_items_together():
    from trainer.evaluate import ratio_bootstrap_ci

    # three rankings: 6 of 6 pairs right, 3 of 6, 0 of 3 -> 9 / 15
    ratio, low, high = ratio_bootstrap_ci([6, 3, 0], [6, 6, 3], n_resamples=2000)
    assert ratio == pytest.approx(0.6)
    assert 0.0 <= low < 0.6 < high <= 1.0
    assert ratio_bootstrap_ci([4, 4], [4, 4]) == (1.0, 1.0, 1.0)


def test_ranking_hits_and_order_agreement_by_hand():
    from trainer.contract import Ranking
    from trainer.evaluate import order_agreement, ranking_hits

    rankings = [
        Ranking("q", ["a", "bb", "ccc"], [[2], [1], [0]]),  # longest first: 3 strict pairs
        Ranking("q", ["a", "bb"], [[0, 1]]),  # a tie: no pair
    ]
    length = lambda prompt, completion: len(completion)  # noqa: E731
    assert ranking_hits(rankings, length) == ([3, 0], [3, 0])
    assert ranking_hits(rankings, lambda p, c: -len(c)) == ([0, 0], [3, 0])
    # (a, b) per completion: b orders 3 pairs strictly (one tie in b is skipped); a agrees
    # on the first two, ties on the third (a tie in a is no agreement)
    groups = [[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (3.0, 4.0)]]
    # pairs by b: (0,1) a agrees, (0,2) agrees, (0,3) agrees, (1,2) agrees, (1,3) agrees,
    # (2,3): b says 3 > 2, a ties -> not agreed: 5 of 6
    assert order_agreement(groups) == ([5], [6])


def test_consensus_orders_weigh_each_raters_votes_by_hand():
    from trainer.contract import Ranking
    from trainer.evaluate import consensus_hits, consensus_orders

    answers = ["a", "bb", "ccc"]
    rankings = [
        # task 1: two honest raters (weights 2 and 1) and an inverted one at weight 0
        Ranking("q", answers, [[2], [1], [0]], weight=2.0, task_id=1),  # ccc > bb > a
        Ranking("q", ["bb", "a", "ccc"], [[2], [1], [0]], weight=1.0, task_id=1),  # ccc>a>bb
        Ranking("q", answers, [[0], [1], [2]], weight=0.0, task_id=1),  # a > bb > ccc
        # task 2: one rater only -> no consensus
        Ranking("r", answers, [[0], [1], [2]], task_id=2),
        # task 3: two raters of equal weight disagree on (a, bb), their only pair
        Ranking("s", ["a", "bb"], [[0], [1]], task_id=3),
        Ranking("s", ["a", "bb"], [[1], [0]], task_id=3),
        # another prompt under task id 1 (rows from elsewhere that reuse ids) is another task
        Ranking("t", answers, [[0], [1], [2]], task_id=1),
    ]
    orders = consensus_orders(rankings)
    # (bb, a): +2 for bb, +1 for a -> bb; (ccc, a): 2 + 1 -> ccc; (ccc, bb): 2 + 1 -> ccc.
    # Task 3's only pair cancels (1 - 1): a task with no consensus pair.
    assert orders == [("q", [("bb", "a"), ("ccc", "a"), ("ccc", "bb")]), ("s", [])]
    length = lambda prompt, completion: len(completion)  # noqa: E731
    assert consensus_hits(rankings, length) == ([3, 0], [3, 0])
    # an RM that prefers short answers but ties bb with ccc: no hit anywhere
    assert consensus_hits(rankings, lambda p, c: -min(len(c), 2)) == ([0, 0], [3, 0])


def test_eval_measures_a_reward_model_against_a_scorer_on_rankings(tiny_dir, tmp_path):
    rankings = tmp_path / "held.jsonl"
    write_jsonl(
        rankings,
        [
            {"prompt": f"q{i}", "completions": ["1", "22", "333"], "ranking": [[2], [1], [0]]}
            for i in range(4)
        ],
    )
    metrics = evaluate(
        EvalConfig(
            out=str(tmp_path / "e"),
            rankings=str(rankings),
            reward_model=str(tiny_dir),
            score_fn="digit_count",
            bootstrap_samples=200,
        )
    )
    # digit_count scores 1/4 per digit: it orders every ranking as the raters did
    assert metrics["score_fn_on_rankings"]["accuracy"] == 1.0
    assert metrics["score_fn_on_rankings"]["pairs"] == 12
    # each prompt has one rater: no task has a consensus
    assert metrics["score_fn_on_consensus"]["pairs"] == 0
    agreement = metrics["reward_model_vs_score_fn"]
    assert agreement["pairs"] == 12 and agreement["items"] == 4  # 3 pairs per prompt
    assert agreement["accuracy"] == pytest.approx(metrics["reward_model"]["accuracy"])
