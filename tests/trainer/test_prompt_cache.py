import pytest
import torch

from trainer import models
from trainer.prompt_cache import shared_prompt_states, split_point
from trainer.reward import completion_features, encode_scored

# prompts of different lengths, two to three answers each, one answer long enough to push
# its prompt out of the row (max_length 24): that row splits after its first token
TEXTS = sorted(
    [
        ("Q?", "ab"),
        ("Q?", "xyzzy"),
        ("Q?", ""),
        ("A longer question here:", "x"),
        ("A longer question here:", "yy yy"),
        ("A longer question here:", "q" * 40),
        ("Mid prompt", "abc abc"),
        ("Mid prompt", "cba"),
    ]
)


def whole_row_features(model, tokenizer, text, depth, pooling, max_length):
    """A row's feature by a lone whole pass, written out: what the shared path must match."""
    row, (start, end) = encode_scored(tokenizer, *text, max_length)
    ids = torch.tensor([row])
    trunk = models.unwrap_peft(model).base_model
    hidden = trunk(input_ids=ids, output_hidden_states=True).hidden_states
    total = models.num_layers(model)
    states = hidden[depth] if depth == total else models.final_norm(model)(hidden[depth])
    if pooling == "mean":
        return states[0, start:end].mean(0)
    return states[0, -1]


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_shared_prompt_features_match_a_whole_pass_of_each_row(tiny_dir, pooling):
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    total = models.num_layers(model)
    depths = sorted({1, total})
    with torch.no_grad():
        shared = completion_features(model, tokenizer, TEXTS, depths, pooling, 24, 5, "fp32")
        for depth in depths:
            assert shared[depth].shape == (len(TEXTS), model.config.hidden_size)
            for i, text in enumerate(TEXTS):
                alone = whole_row_features(model, tokenizer, text, depth, pooling, 24)
                assert torch.allclose(shared[depth][i], alone, atol=1e-5), (depth, text)


def test_each_distinct_prompt_runs_once(tiny_dir):
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    trunk = models.unwrap_peft(model).base_model
    encoded = [encode_scored(tokenizer, p, c, 64) for p, c in TEXTS]
    rows, spans = [r for r, _ in encoded], [s for _, s in encoded]
    seen = []
    hook = trunk.register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        with torch.no_grad():
            hidden, mask, span_mask = shared_prompt_states(trunk, rows, spans, 0, "cpu")
    finally:
        hook.remove()
    # one pass of the 3 distinct prompts, one of the 8 answers; the prompt tokens of the
    # answers' rows are never run again
    assert [shape[0] for shape in seen] == [3, 8]
    cuts = [split_point(r, s) for r, s in zip(rows, spans, strict=True)]
    assert seen[0][1] == max(cuts)  # the longest distinct prompt part
    assert seen[1][1] == max(len(r) - cut for r, cut in zip(rows, cuts, strict=True))
    # each row's real tokens, contiguous in the layout, are its own
    assert mask.sum(1).tolist() == [len(r) for r in rows]
    assert span_mask.sum(1).tolist() == [b - a for a, b in spans]
    assert len(hidden) == models.num_layers(model) + 1


def test_split_point_keeps_a_token_on_each_side():
    assert split_point([5, 6, 7, 1], (2, 3)) == 2
    assert split_point([5, 6, 7, 1], (0, 3)) == 1  # an answer that filled the row
    assert split_point([1], (0, 1)) is None
