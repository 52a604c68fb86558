"""Fill-mask probes on a model whose ranking is set by hand; probes come through the plugin hook."""

from __future__ import annotations

import pytest
import torch

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.fill_mask import FillMaskEvaluator, score_probes, single_token_strings

from .conftest import tiny_modernbert


def word_tokens(tokenizer, n: int) -> list[tuple[int, str]]:
    """``n`` tokens that decode to distinct alphabetic strings of three or more letters."""
    seen, out = set(), []
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i]).strip()
        if len(text) >= 3 and text.isalpha() and text not in seen:
            seen.add(text)
            out.append((i, text))
    return out[:n]


@pytest.fixture
def ranked(tokenizer):
    """A model that ranks token A first and token B second at every position, whatever the input."""
    (a, a_text), (b, b_text) = word_tokens(tokenizer, 2)
    model = tiny_modernbert(tokenizer, tie_word_embeddings=False)
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
        model.decoder.bias[a], model.decoder.bias[b] = 5.0, 4.0
    return model, a_text, b_text


def test_scores_by_hand(tokenizer, ranked):
    model, first, second = ranked
    unreachable = "qzqzqzqz"
    assert unreachable not in single_token_strings(tokenizer)
    probes = [
        {"text": "the menu entry for {mask} opens", "answers": [first]},           # top 1
        {"text": "{mask} and the commands", "answers": [f" {second} ", "other"]},  # rank 2 (answers are stripped)
        {"text": "set the {mask}", "answers": [unreachable]},                        # no single token can hit
    ]
    summary, rows = score_probes(model, tokenizer, probes, k=5)
    assert [r["rank"] for r in rows] == [1, 2, None]
    assert rows[0]["predictions"][:2] == [first, second]
    assert summary["top1"] == pytest.approx(1 / 3)
    assert summary["top5"] == pytest.approx(2 / 3)
    assert summary["reachable_probes"] == 2 and summary["top5_reachable"] == 1.0
    assert summary["multi_token_answers"] == 2  # "other" is not one token here either


def test_a_probe_needs_exactly_one_mask(tokenizer, ranked):
    with pytest.raises(ValueError, match="exactly one"):
        score_probes(ranked[0], tokenizer, [{"text": "no mask here", "answers": ["x"]}])


def test_probes_come_from_the_language_plugins(tokenizer, ranked, write_plugin, registries_with):
    model, first, _ = ranked
    ep = write_plugin("tplug_probes", f"""
        from encoder_recipes.hookspecs import hookimpl

        @hookimpl
        def encoder_recipes_fill_mask_probes(language):
            if language != "xx":
                return None
            return [{{"text": "open the {{mask}} dialog", "answers": ["{first}"]}},
                    {{"text": "{{mask}} works", "answers": ["nothing"]}}]
    """)
    registries = registries_with(ep)
    out = FillMaskEvaluator(k=1).evaluate(model=model, tokenizer=tokenizer,
                                          context=EvalContext(language="xx", registries=registries))
    assert out["probes"] == 2 and out["top1"] == 0.5
    none = FillMaskEvaluator().evaluate(model=model, tokenizer=tokenizer,
                                        context=EvalContext(language="yy", registries=registries))
    assert none["probes"] == 0 and "yy" in none["note"]


def test_sample_corpus_probes_are_scored_as_domain(tokenizer, ranked, registries):
    """A run on sample corpora gets their in-domain probes scored beside the plugins' (domain_*)."""
    model, first, _ = ranked
    domain = [{"text": "the {mask} dialog", "answers": [first]}, {"text": "{mask} works", "answers": ["nothing"]}]
    out = FillMaskEvaluator(k=1).evaluate(model=model, tokenizer=tokenizer, context=EvalContext(
        language="yy", registries=registries, sample_probes=domain))
    assert out["probes"] == 0 and out["domain_probes"] == 2 and out["domain_top1"] == 0.5
    assert [r["rank"] for r in out["details"]["domain_probes"]] == [1, None]


def test_sample_probes_only_for_runs_on_sample_corpora(registries):
    from encoder_recipes.data.samples import sample_probes
    from encoder_recipes.schema import DataSource

    ja = DataSource(name="s", sample="ja")
    probes = sample_probes([ja], registries)
    assert probes and all(p["text"].count("{mask}") == 1 and p["answers"] for p in probes)
    assert sample_probes([ja, DataSource(name="own", paths=["x/*.txt"])], registries) == []  # own text: none
    assert sample_probes([], registries) == []
