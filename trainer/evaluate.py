"""Evaluation: reward-model accuracy, win rates with bootstrap CIs, automatic text metrics.

- RM accuracy on held-out rankings (overall and per K).
- Win rate of a policy against a reference policy on a prompt set, judged by a reward model or
  a scoring function, with a percentile bootstrap CI, overall and per prompt category. With
  ``train_categories`` set, the categories are also pooled into "seen" (trained on) and
  "unseen" (held out) to show zero-shot generalisation.
- Where prompts carry a "reference" answer: ROUGE-L (rouge-score), BLEU (sacrebleu), exact
  match and SQuAD-style token F1.

    python -m trainer eval --policy PPO_DIR --reference-policy SFT_DIR --reward-model RM_DIR \
        --prompts prompts.jsonl --split test --out EVAL_DIR
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from trainer import models
from trainer.contract import EvalConfig, load_scorer
from trainer.data import DataError, Prompt, read_prompts, read_rankings, write_jsonl
from trainer.runlog import MetricsLog, progress, seed_everything, use_threads
from trainer.sampling import check_min_new_tokens

# --------------------------------------------------------------------------- pure metrics


def bootstrap_ci(
    values, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap over the items of ``values``."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(data.mean()), float(low), float(high)


def ratio_bootstrap_ci(
    numerators, denominators, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(ratio, low, high) of sum(numerators) / sum(denominators), with a percentile bootstrap
    over the items (e.g. correct pairs / pairs per ranking: a ranking's pairs stay together,
    as they are not independent)."""
    top = np.asarray(numerators, dtype=np.float64)
    bottom = np.asarray(denominators, dtype=np.float64)
    if top.size == 0 or bottom.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, top.size, size=(n_resamples, top.size))
    sums = bottom[picks].sum(axis=1)
    ratios = np.where(sums > 0, top[picks].sum(axis=1) / np.maximum(sums, 1e-12), np.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(ratios, [tail, 1.0 - tail])
    return float(top.sum() / bottom.sum()), float(low), float(high)


def ranking_hits(rankings, score_of) -> tuple[list[int], list[int]]:
    """Per ranking: how many of its strict pairs ``score_of(prompt, completion)`` orders as
    the ranking does (a tie in the scores is not a hit), and how many strict pairs it has."""
    hits, counts = [], []
    for ranking in rankings:
        scores = [score_of(ranking.prompt, c) for c in ranking.completions]
        pairs = ranking.strict_pairs()
        hits.append(sum(scores[winner] > scores[loser] for winner, loser in pairs))
        counts.append(len(pairs))
    return hits, counts


def consensus_orders(rankings) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per task that two or more raters ranked: its prompt and the (better, worse) answer
    pairs that the reliability-weighted majority of its raters orders, each rater's vote on a
    pair counted at its ranking's weight (the consensus weights: an inverted rater counts 0).
    A pair whose votes cancel, or that no rater with weight orders, gives none. Rankings of
    one task share their prompt and ``task_id`` (or, without one, their answers)."""
    tasks: dict = defaultdict(list)
    for ranking in rankings:
        task = tuple(sorted(ranking.completions)) if ranking.task_id is None else ranking.task_id
        tasks[(ranking.prompt, task)].append(ranking)
    orders = []
    for task in tasks.values():
        if len(task) < 2:
            continue
        votes: dict[tuple[str, str], float] = defaultdict(float)
        for ranking in task:
            for winner, loser in ranking.strict_pairs():
                a, b = ranking.completions[winner], ranking.completions[loser]
                if a == b:
                    continue
                key, sign = ((a, b), 1.0) if a < b else ((b, a), -1.0)
                votes[key] += sign * ranking.weight
        pairs = [(a, b) if vote > 0 else (b, a) for (a, b), vote in votes.items() if vote != 0]
        orders.append((task[0].prompt, sorted(pairs)))
    return orders


def consensus_hits(rankings, score_of) -> tuple[list[int], list[int]]:
    """Per task with two or more raters: how many of its consensus pairs (see
    ``consensus_orders``) ``score_of(prompt, completion)`` orders the same way (a tie in the
    scores is not a hit), and how many consensus pairs it has."""
    hits, counts = [], []
    for prompt, pairs in consensus_orders(rankings):
        ordered = (score_of(prompt, better) > score_of(prompt, worse) for better, worse in pairs)
        hits.append(sum(ordered))
        counts.append(len(pairs))
    return hits, counts


def order_agreement(groups: list[list[tuple[float, float]]]) -> tuple[list[int], list[int]]:
    """Per group (one prompt's distinct completions, each as (score a, score b)): of the
    pairs that b orders strictly, how many a orders the same way; and how many there are."""
    agree, counts = [], []
    for items in groups:
        same = total = 0
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                b = items[i][1] - items[j][1]
                if b == 0:
                    continue
                a = items[i][0] - items[j][0]
                total += 1
                same += (a > 0) == (b > 0) and a != 0
        agree.append(same)
        counts.append(total)
    return agree, counts


def _ratio_summary(hits, counts, config) -> dict:
    value, low, high = ratio_bootstrap_ci(
        hits, counts, config.bootstrap_samples, config.confidence, config.seed
    )
    return {"accuracy": value, "ci": [low, high], "pairs": int(sum(counts)), "items": len(hits)}


def win_values(policy_scores, reference_scores) -> list[float]:
    """1 for a win, 0.5 for a tie, 0 for a loss, per prompt."""
    return [
        1.0 if p > r else 0.5 if p == r else 0.0
        for p, r in zip(policy_scores, reference_scores, strict=True)
    ]


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def text_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE-L F (rouge-score), corpus BLEU (sacrebleu), exact match and token F1, in [0, 1]
    except BLEU (0-100, sacrebleu's scale)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    bleu = sacrebleu.corpus_bleu(predictions, [references]).score
    return {
        "rougeL": float(np.mean(rouge)),
        "bleu": float(bleu),
        "exact_match": float(
            np.mean([exact_match(p, r) for p, r in zip(predictions, references, strict=True)])
        ),
        "token_f1": float(
            np.mean([token_f1(p, r) for p, r in zip(predictions, references, strict=True)])
        ),
        "count": len(predictions),
    }


def grouped_win_rates(
    wins: list[float],
    categories: list[str],
    train_categories: list[str],
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict:
    """Win rate with CI overall, per category, and seen/unseen when train_categories is set."""

    def summary(values):
        mean, low, high = bootstrap_ci(values, n_resamples, confidence, seed)
        return {"win_rate": mean, "ci_low": low, "ci_high": high, "n": len(values)}

    by_category: dict[str, list[float]] = defaultdict(list)
    for win, category in zip(wins, categories, strict=True):
        by_category[category].append(win)
    result = {
        "overall": summary(wins),
        "by_category": {c: summary(v) for c, v in sorted(by_category.items())},
    }
    if train_categories:
        seen = [w for w, c in zip(wins, categories, strict=True) if c in train_categories]
        unseen = [w for w, c in zip(wins, categories, strict=True) if c not in train_categories]
        result["seen_categories"] = summary(seen)
        result["unseen_categories"] = summary(unseen)
    return result


# --------------------------------------------------------------------------- model side


def _judge(config: EvalConfig, device):
    if config.score_fn:
        fn = load_scorer(config.score_fn)
        return lambda prompts, completions: [float(s) for s in fn(prompts, completions)]
    if config.reward_model:
        return reward_judge(
            config.reward_model, device, config.batch_size, config.max_length, config.precision
        )
    return None


def reward_judge(
    reward_model: str, device, batch_size: int, max_length: int, precision: str = "fp32"
):
    """(prompts, completions) -> rewards, from a reward model directory, read as in training
    (also used by ``trainer sample`` to score samples for uncertainty selection)."""
    from trainer.reward import score_texts

    model, tokenizer = models.load_scalar_model(
        reward_model, device, dtype=models.dtype_of(precision)
    )
    return lambda prompts, completions: score_texts(
        model, tokenizer, prompts, completions, max_length, batch_size
    )


def _against_scorer(config: EvalConfig, rankings, model, tokenizer) -> dict:
    """With rankings, a reward model and a scorer (e.g. the simulated raters' hidden rule):
    how often the scorer itself agrees with the rankings (what a perfect model of it would
    score), and how often the reward model orders the rankings' distinct completions as the
    scorer does, each with its n and a bootstrap CI (over rankings, over prompts)."""
    from trainer.reward import score_texts

    fn = load_scorer(config.score_fn)
    texts = sorted({(r.prompt, c) for r in rankings for c in r.completions})
    prompts, completions = [p for p, _ in texts], [c for _, c in texts]
    scorer = dict(zip(texts, [float(s) for s in fn(prompts, completions)], strict=True))
    rewards = dict(
        zip(
            texts,
            score_texts(
                model, tokenizer, prompts, completions, config.max_length, config.batch_size
            ),
            strict=True,
        )
    )
    by_prompt: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for text in texts:
        by_prompt[text[0]].append((rewards[text], scorer[text]))
    return {
        "score_fn_on_rankings": _ratio_summary(
            *ranking_hits(rankings, lambda p, c: scorer[(p, c)]), config
        ),
        "score_fn_on_consensus": _ratio_summary(
            *consensus_hits(rankings, lambda p, c: scorer[(p, c)]), config
        ),
        "reward_model_vs_score_fn": _ratio_summary(
            *order_agreement(list(by_prompt.values())), config
        ),
    }


def _complete(model_dir: str, prompts: list[Prompt], config: EvalConfig, device) -> list[dict]:
    from trainer.sampling import sample_completions

    model, tokenizer = models.load_policy(
        model_dir, device, dtype=models.dtype_of(config.precision)
    )
    rows, _ = sample_completions(
        model,
        tokenizer,
        prompts,
        k=1,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
        batch_size=config.batch_size,
        model_name=model_dir,
        min_new_tokens=config.min_new_tokens,
    )
    return rows


def _earlier_answers(config: EvalConfig, prompts: list[Prompt]) -> tuple[list[dict], list[dict]]:
    """(policy rows, reference rows) from ``config.completions``, in the order of ``prompts``."""
    from trainer.data import iter_jsonl

    by_id = {}
    for n, row in iter_jsonl(config.completions):
        if not isinstance(row.get("completion"), str) or "prompt_id" not in row:
            raise DataError(f"{config.completions}:{n}: expected 'prompt_id' and 'completion'")
        by_id[str(row["prompt_id"])] = row
    missing = [p.id for p in prompts if p.id not in by_id]
    if missing:
        raise DataError(
            f"{config.completions}: no answer for prompt id(s) {', '.join(missing[:5])} "
            "(an eval of other prompts?)"
        )
    policy_rows = [dict(by_id[p.id]) for p in prompts]
    reference_rows = []
    if config.reference_policy:
        for p, row in zip(prompts, policy_rows, strict=True):
            if not isinstance(row.get("reference_completion"), str):
                raise DataError(
                    f"{config.completions}: prompt {p.id} has no 'reference_completion' "
                    "(that eval had no --reference-policy)"
                )
            reference_rows.append({**row, "completion": row["reference_completion"]})
    return policy_rows, reference_rows


def evaluate(config: EvalConfig) -> dict:
    seed_everything(config.seed)
    # Read and check every input before anything is written.
    if not config.rankings and not config.prompts:
        raise DataError("nothing to evaluate: give --rankings and/or --prompts")
    if config.rankings and not config.reward_model:
        raise DataError("--rankings needs --reward-model (the model whose accuracy to report)")
    if config.prompts and not config.policy:
        raise DataError("--prompts needs --policy (the policy to evaluate)")
    if config.reference_policy and not (config.reward_model or config.score_fn):
        raise DataError("a win rate needs a judge: --reward-model or --score-fn")
    if config.score_fn:
        load_scorer(config.score_fn)
    for source in (config.policy, config.reference_policy, config.reward_model):
        if source:
            models.check_model_source(source)
    rankings = read_rankings(config.rankings) if config.rankings else None
    prompts = read_prompts(config.prompts, split=config.split) if config.prompts else None
    if config.completions and prompts is None:
        raise DataError("--completions needs --prompts (the prompts those answers are for)")
    earlier = _earlier_answers(config, prompts) if config.completions else None
    check_min_new_tokens(config.min_new_tokens, config.max_new_tokens)
    use_threads(config.threads, config.adapt_threads)
    device = models.pick_device(config.device)
    config = replace(config, precision=models.resolve_precision(config.precision, device))
    log = MetricsLog(config.out)
    results: dict = {}
    tasks = int(bool(config.rankings)) + int(bool(config.prompts))
    bar = progress(max(tasks, 1), "eval")
    if rankings is not None:
        from trainer.reward import evaluate_rankings

        model, tokenizer = models.load_scalar_model(
            config.reward_model, device, dtype=models.dtype_of(config.precision)
        )
        results["reward_model"] = evaluate_rankings(
            model, tokenizer, rankings, config.max_length, config.batch_size
        )
        if config.score_fn:
            results.update(_against_scorer(config, rankings, model, tokenizer))
        log.log(1, stage="reward_model", accuracy=results["reward_model"]["accuracy"])
        bar.update(1)
    if prompts is not None:
        if earlier is not None:
            policy_rows, reference_rows = earlier
        else:
            policy_rows = _complete(config.policy, prompts, config, device)
        completions = [r["completion"] for r in policy_rows]
        texts = [p.prompt for p in prompts]
        with_reference = [i for i, p in enumerate(prompts) if p.reference is not None]
        if with_reference:
            results["text_metrics"] = text_metrics(
                [completions[i] for i in with_reference],
                [prompts[i].reference for i in with_reference],
            )
        judge = _judge(config, device)
        if config.reference_policy:
            if earlier is None:
                reference_rows = _complete(config.reference_policy, prompts, config, device)
            policy_scores = judge(texts, completions)
            reference_scores = judge(texts, [r["completion"] for r in reference_rows])
            wins = win_values(policy_scores, reference_scores)
            results["win_rate"] = grouped_win_rates(
                wins,
                [p.category for p in prompts],
                config.train_categories,
                config.bootstrap_samples,
                config.confidence,
                config.seed,
            )
            results["mean_score"] = {
                "policy": float(np.mean(policy_scores)),
                "reference": float(np.mean(reference_scores)),
            }
            for row, ref, ps, rs, w in zip(
                policy_rows, reference_rows, policy_scores, reference_scores, wins, strict=True
            ):
                row.update(
                    reference_completion=ref["completion"], score=ps, reference_score=rs, win=w
                )
        write_jsonl(Path(config.out) / "completions.jsonl", policy_rows)
        log.log(tasks, stage="policy", prompts=len(prompts))
        bar.update(1)
    bar.close()
    return log.finish(**results, config=asdict(config))
