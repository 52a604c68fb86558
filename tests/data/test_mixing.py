"""The mixture kind: built-in weights and temperature, their per-step schedule, the draws that follow
it, an exact save/restore across a change of τ and language set, and the shares the metrics log."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from encoder_recipes.clock import Clock
from encoder_recipes.components.masking import TokenMasking
from encoder_recipes.components.mixtures import Temperature, Weights
from encoder_recipes.data.mixing import MixtureSchedule, mixture_ref, source_sizes
from encoder_recipes.data.mixture import MixtureStream
from encoder_recipes.data.sources import DocumentStream
from encoder_recipes.schema import ComponentRef, Data, DataSource
from encoder_recipes.training.batches import BatchMaker, DocumentTokenizer, SequenceStream
from encoder_recipes.training.mixture_log import MixtureLog

SIZES = {"en": 800.0, "zh": 200.0, "ja": 100.0, "fi": 50.0}
NAMES = sorted(SIZES)


def clock(step: int, stage_steps: int = 100, start: int = 0) -> Clock:
    return Clock(step=step, total_steps=start + stage_steps, stage="s", stage_index=0, stage_step=step - start,
                 stage_steps=stage_steps)


def test_temperature_is_p_proportional_to_size_to_the_tau_over_its_languages():
    mix = Temperature(tau=0.5, languages=["en", "zh", "ja"])
    p = mix.probabilities(clock(0), sources=NAMES, sizes=SIZES)
    weights = {"en": 800 ** 0.5, "zh": 200 ** 0.5, "ja": 100 ** 0.5}
    total = sum(weights.values())
    assert p == pytest.approx({**{k: v / total for k, v in weights.items()}, "fi": 0.0})
    # τ = 1: by size; τ = 0: uniform; a count: the N largest
    assert Temperature(tau=1.0).probabilities(clock(0), sources=NAMES, sizes=SIZES)["en"] == pytest.approx(800 / 1150)
    assert Temperature(tau=0.0, languages=2).probabilities(clock(0), sources=NAMES, sizes=SIZES) == {
        "en": 0.5, "zh": 0.5, "ja": 0.0, "fi": 0.0}
    assert mix.describe(clock(0)) == {"tau": 0.5, "languages": 3.0}


def test_premixed_reads_its_source_alone_and_needs_no_sizes():
    mix = Temperature(tau=0.7, languages=60, premixed="zh")
    assert not mix.needs_sizes()
    assert mix.probabilities(clock(0), sources=NAMES, sizes=None) == {"en": 0.0, "fi": 0.0, "ja": 0.0, "zh": 1.0}


def test_tau_schedule_moves_with_the_stage_and_the_schedule_keeps_runs():
    mix = Temperature(schedule=[(0.0, 1.0), (0.5, 0.0)])
    assert [mix.tau(clock(s)) for s in (0, 25, 50, 99)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    schedule = MixtureSchedule.build(mix, (clock(s) for s in range(100)), sources=NAMES, sizes=SIZES)
    assert schedule.starts[0] == 0 and schedule.starts[-1] == 50  # one run per τ up to 50, then flat
    assert schedule.at(99) == pytest.approx(dict.fromkeys(NAMES, 0.25))
    assert schedule.at(0) == pytest.approx({k: v / 1150 for k, v in SIZES.items()})
    constant = MixtureSchedule.build(Weights(weights={"en": 3, "fi": 1}), (clock(s) for s in range(100)),
                                     sources=NAMES, sizes=None)
    assert constant.starts == [0] and constant.at(42) == {"en": 0.75, "fi": 0.25, "ja": 0.0, "zh": 0.0}


def test_a_mapping_of_weights_is_short_for_the_weights_mixture():
    data = Data(sources=[DataSource(name=n, paths=["x"]) for n in NAMES], mixture={"en": 1.0})
    assert isinstance(data.mixture, dict)
    ref = Data(sources=data.sources, mixture={"name": "temperature", "tau": 0.3}).mixture
    assert isinstance(ref, ComponentRef) and ref.params == {"tau": 0.3}


@pytest.fixture
def corpora(tmp_path):
    """Four languages of different sizes, each its own file (sizes in documents: 400, 200, 100, 50)."""
    out = {}
    for name, n in (("en", 400), ("zh", 200), ("ja", 100), ("fi", 50)):
        path = tmp_path / f"{name}.txt"
        path.write_text("".join(f"{name} document {i} " + "word " * (i % 7) + "\n" for i in range(n)),
                        encoding="utf-8")
        out[name] = DataSource(name=name, paths=[str(path)])
    return out


def _streams(corpora):
    return {name: DocumentStream(source, "train") for name, source in corpora.items()}


def test_sizes_are_document_counts_unless_given(corpora):
    data = Data(sources=list(corpora.values()), validation_fraction=0.01)
    sizes = source_sizes(data, validation_fraction=0.01)
    assert 380 < sizes["en"] <= 400 and 45 < sizes["fi"] <= 50  # about 1% held out
    given = Data(sources=[corpora["en"].model_copy(update={"size": 7.0}), corpora["fi"]])
    assert source_sizes(given)["en"] == 7.0


def test_draws_follow_the_schedule_and_resume_exactly_across_a_phase_change(corpora):
    """Phase 1 (steps 0-9) τ 0.7 over {en, zh}; phase 2 (10-19) τ 0.3 over all four."""
    sizes = {name: float(n) for name, n in (("en", 400), ("zh", 200), ("ja", 100), ("fi", 50))}
    phase1 = Temperature(tau=0.7, languages=["en", "zh"]).probabilities(clock(0), sources=NAMES, sizes=sizes)
    phase2 = Temperature(tau=0.3).probabilities(clock(0), sources=NAMES, sizes=sizes)
    schedule = MixtureSchedule([0, 10], [phase1, phase2])

    def run(mixture, steps, per_step=30):
        out = []
        it = iter(mixture)
        for step in steps:
            mixture.set_step(step)
            out += [(step, next(it)) for _ in range(per_step)]
        return out

    mixture = MixtureStream(_streams(corpora), schedule, seed=3)
    draws = run(mixture, range(20))
    assert {name for step, (name, _) in draws if step < 10} == {"en", "zh"}
    assert {name for step, (name, _) in draws if step >= 10} == set(NAMES)

    # save after step 6, restore into new streams: the same documents, across the change at step 10
    again = MixtureStream(_streams(corpora), schedule, seed=3)
    run(again, range(7))
    state = json.loads(json.dumps(again.state_dict()))  # by value, as a checkpoint holds it
    resumed = MixtureStream(_streams(corpora), schedule, seed=99)
    resumed.load_state_dict(state)
    assert run(resumed, range(7, 20)) == draws[7 * 30:]


def _word_tokenizer(corpora):
    """A word-level tokenizer over the corpora's words (a trained BPE would take seconds)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"]
    words = sorted({w for source in corpora.values()
                    for line in open(source.paths[0], encoding="utf-8") for w in line.split()})
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   pad_token="[PAD]", unk_token="[UNK]")


def test_batch_shares_in_the_metrics_match_the_schedule(corpora):
    """What metrics.jsonl logs: over a log interval each source's share of the documents read is its
    probability within sampling noise (fixed seed; over 800 documents, binomial sd < 0.018)."""
    sizes = {"en": 400.0, "zh": 200.0, "ja": 100.0, "fi": 50.0}
    mix = Temperature(tau=0.5)
    schedule = MixtureSchedule.build(mix, (clock(s) for s in range(20)), sources=NAMES, sizes=sizes)
    tokenizer = _word_tokenizer(corpora)
    sequences = SequenceStream(MixtureStream(_streams(corpora), schedule, seed=0), DocumentTokenizer(tokenizer),
                               "best_fit", tokenizer.cls_token_id, tokenizer.sep_token_id)
    maker = BatchMaker(sequences, TokenMasking(rate=0.3), tokenizer, seed=0)
    log = MixtureLog(mix, schedule, NAMES)
    for step in range(20):
        log.add(maker.next(step=step, batch_size=16, seq_len=64, rate=0.3).sources)
    line = log.line(clock(19))
    assert line["mixture/tau"] == 0.5
    p = schedule.at(19)
    assert sum(line[f"mixture/docs/{n}"] for n in NAMES) == pytest.approx(1.0)
    assert sum(maker.sequences.read[n][0] for n in NAMES) > 800
    for name in NAMES:
        assert line[f"mixture/p/{name}"] == pytest.approx(p[name])
        assert line[f"mixture/docs/{name}"] == pytest.approx(p[name], abs=0.05), (name, line)
        assert line[f"mixture/tokens/{name}"] > 0
    assert log.line(clock(19))["mixture/docs/en"] == 0.0  # counts start again after each line


def test_scale_rule_maps_language_sets_by_rank(registries):
    from encoder_recipes.validation import load_recipe

    recipe = load_recipe("mmbert-base", registries=registries, scale="smoke").recipe
    assert [s.name for s in recipe.data.sources] == ["en", "zh", "ja", "fi"]
    assert [s.sample for s in recipe.data.sources] == ["en", "zh", "ja", "fi"]
    refs = [mixture_ref(recipe, i) for i in range(3)]
    assert [r.params["languages"] for r in refs] == [["en", "zh"], ["en", "zh", "ja"], ["en", "zh", "ja", "fi"]]
    assert [r.params["tau"] for r in refs] == [0.7, 0.5, 0.3]
    assert all(r.params["premixed"] is None for r in refs)


def test_the_store_refuses_a_scheduled_mixture(registries):
    from encoder_recipes.data.store_run import _fixed_weights
    from encoder_recipes.validation import load_recipe

    recipe = load_recipe("mmbert-base", registries=registries).recipe
    with pytest.raises(ValueError, match="fixed weights only"):
        _fixed_weights(recipe, 0)
    assert _fixed_weights(load_recipe("fi-modernbert", registries=registries).recipe, 1)["long_documents"] == 1.0


def test_unknown_sources_in_a_mixture_are_reported_with_where_they_are(registries, tmp_path):
    from encoder_recipes.recipe_files import RecipeError
    from encoder_recipes.validation import load_recipe

    path = tmp_path / "bad.yaml"
    path.write_text("""\
metadata: {name: bad, language: fi}
tokenizer: {name: bpe, vocab_size: 512}
data:
  sources: [{name: en, paths: [x.txt]}, {name: fi, paths: [y.txt]}]
stages:
  - name: one
    context: {name: fixed, seq_len: 128}
    steps: 10
    batch_size: 8
    lr: 1.0e-3
    masking: {name: mlm, rate: 0.3}
    mixture: {name: temperature, tau: 0.5, languages: [en, xx], premixed: yy}
""", encoding="utf-8")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path), registries=registries)
    text = str(err.value)
    assert "stages[0].mixture.languages[1]" in text and "'xx'" in text
    assert "stages[0].mixture.premixed" in text and "'yy'" in text


def test_weights_mixture_draws_in_proportion(corpora):
    mixture = MixtureStream(_streams(corpora), MixtureSchedule.constant({"en": 0.75, "fi": 0.25, "ja": 0, "zh": 0}),
                            seed=1)
    names = [name for name, _ in islice(mixture, 2000)]
    assert names.count("en") / 2000 == pytest.approx(0.75, abs=0.03) and "zh" not in names
