"""Named scales: the same recipe file describes the paper's full run and a small offline run.

``--scale NAME`` applies ``scales.NAME`` (a :class:`~encoder_recipes.schema.ScaleRule`;
every recipe has ``smoke`` with the generic defaults) to the resolved full
recipe. The generic rule keeps each stage's *shape* — its order, packing,
masking strategy and rate (schedule), RoPE thetas, LR schedule and the model's
layer pattern and norm — and shrinks its *size*:

* model: the fields in ``rule.model`` are replaced (a tiny width and depth);
  ``max_position_embeddings`` and the local window are divided by the
  sequence divisor; the vocabulary comes from the scale's tokenizer.
* components: each answers for itself through
  :meth:`~encoder_recipes.components.base.Component.scaled`, given the
  sequence-length rule, the step ratio of its span and ``rule.vocab_size``.
  The built-ins: a trained tokenizer keeps its kind with ``rule.vocab_size``,
  a loaded one (``pretrained``, a hub name at full scale) names a ``bpe``
  trained offline in its place; context schedules divide their lengths by
  ``rule.seq_len_divisor`` (at least ``min_seq_len``); LR schedules scale
  their warmup by the ratio of the span they live in (the stage, or the run
  for ``scope: run``), but to at least ``rule.min_warmup_steps`` (at most a
  tenth of the span): the smoke scale's LR is several times the paper's, and a
  warmup of the paper's *fraction* of a short run is a few steps, which
  left zh-modernbert-wwm's first stage stuck near the unigram loss. A plugin's component is kept as it is unless it says otherwise.
* steps: ``rule.total_tokens`` (batch × sequence length) are shared among the
  stages in proportion to their full-scale tokens, and each stage's share
  becomes steps at its scaled length (at least ``min_stage_steps``). Sharing
  tokens, not full-scale step counts, spends the small run's time where the
  paper spent its compute: a long-context stage has few but costly steps at
  full scale, and at smoke scale too. Evaluators' ``every_steps`` are scaled
  by the run's ratio.
* batch: every stage uses ``rule.batch_size`` sequences, without accumulation.
  A batch warmup keeps its shape: it starts at the divisor of
  ``rule.batch_size`` nearest the same fraction of the batch (ModernBERT's
  768 of 4,608, a sixth, becomes 2 of 16), rises by that much, and lasts the
  same fraction of the stage's tokens; the stage's steps then come from its
  token share through the ramp.
* token counts in components (an LR warmup in tokens): times the ratio of
  their span's tokens at this scale to its tokens at full scale.
* learning rate: every stage's peak LR is multiplied by ``rule.lr_multiplier``,
  by default the ratio of the full model's width to the scale's (Adam's best
  LR grows as a model narrows, as muP makes precise); ratios between stages stay.
* data: with ``sample_data``, the offline sample corpus a plugin registers for
  the recipe's language (``encoder_recipes_register_sample_corpora``); with
  ``languages``, one sample corpus per listed language, and each temperature
  mixture's language set mapped onto them by rank
  (:mod:`encoder_recipes.scale_languages`).
* finally ``rule.overrides`` (``key.path: value``) are applied.
"""

from __future__ import annotations

import copy
from typing import Any

from encoder_recipes.batch_warmup import TokenTimeline
from encoder_recipes.components.base import Scaling
from encoder_recipes.data.samples import corpus_for_language
from encoder_recipes.recipe_files import RecipeError, RecipeIssue, apply_override
from encoder_recipes.registry import Registries
from encoder_recipes.scale_languages import offline_languages
from encoder_recipes.schema import Recipe, Stage


def apply_scale(recipe: Recipe, name: str, registries: Registries, *, source: str = "<recipe>") -> Recipe:
    from encoder_recipes.plan import build_plan, stage_timeline
    from encoder_recipes.validation import ResolvedRecipe, component_refs, validate_data

    if name not in recipe.scales:
        raise RecipeError([RecipeIssue(source, None, None, "scales",
                                       f"unknown scale {name!r}; this recipe has: {', '.join(sorted(recipe.scales))}")])
    rule = recipe.scales[name]
    full_plan = build_plan(recipe, registries)
    data = copy.deepcopy(recipe.model_dump(mode="python"))
    divisor = rule.seq_len_divisor

    def shrink(length: int) -> int:
        return max(rule.min_seq_len, length // divisor)

    model = data["model"]
    model.update(rule.model)
    model["vocab_size"] = None
    model["max_position_embeddings"] = shrink(model["max_position_embeddings"])
    window_divisor = rule.local_attention_divisor or divisor
    model["local_attention"] = max(2, model["local_attention"] // window_divisor)

    if rule.sample_data and not rule.languages:
        corpus = corpus_for_language(recipe.metadata.language, registries)
        if corpus is None:
            raise RecipeError([RecipeIssue(source, None, None, f"scales.{name}.sample_data",
                                           f"no plugin registers a sample corpus for language "
                                           f"{recipe.metadata.language!r}; set sample_data: false and point "
                                           "data.sources at your own text")])
        data["data"]["sources"] = [{"name": "sample", "sample": corpus.name}]
        data["data"]["mixture"] = {}

    lr_multiplier = rule.lr_multiplier or recipe.model.hidden_size / model["hidden_size"]
    full_steps = [s.steps for s in full_plan.stages]
    full_tokens = sum(s.tokens for s in full_plan.stages)
    new_steps, new_tokens, timelines = [], [], []
    for full, stage in zip(full_plan.stages, data["stages"]):
        share = rule.total_tokens * full.tokens / full_tokens
        length = max(rule.min_seq_len, full.mean_seq_len / divisor)
        if stage.get("batch_warmup"):
            stage["batch_warmup"] = _scaled_batch_warmup(stage["batch_warmup"], stage["batch_size"], rule.batch_size,
                                                         share / full.tokens)
        stage["batch_size"] = rule.batch_size
        timeline = stage_timeline(Stage.model_validate({**stage, "steps": 1, "tokens": None}), length)
        steps = timeline.step_at_tokens(share) if timeline.warmup else round(share / (rule.batch_size * length))
        new_steps.append(max(rule.min_stage_steps, steps))
        new_tokens.append(timeline.tokens_before(new_steps[-1]))
        timelines.append(timeline)
    run_ratio = sum(new_steps) / sum(full_steps)
    run_token_ratio = sum(new_tokens) / full_tokens
    for stage, new in zip(data["stages"], new_steps):
        stage["steps"], stage["tokens"] = new, None
        stage["micro_batch_size"] = None
        stage["lr"] = stage["lr"] * lr_multiplier
        if rule.sample_data and not rule.languages:
            stage["mixture"] = None

    # Each component shrinks its own sizes (Component.scaled); step counts by the ratio of the
    # span they live in: their stage's, or the run's.
    resolved = ResolvedRecipe(recipe, source)
    for loc, kind, ref in component_refs(recipe):
        in_stage = loc[0] == "stages"
        stage_ratio = new_steps[loc[1]] / full_steps[loc[1]] if in_stage else run_ratio
        token_ratio = new_tokens[loc[1]] / full_plan.stages[loc[1]].tokens if in_stage else run_token_ratio

        def steps(n: int, span: str = "stage", r: float = stage_ratio) -> int:
            return _scale_steps(n, run_ratio if span == "run" else r)

        def tokens(n: float, span: str = "stage", r: float = token_ratio) -> float:
            return n * (run_token_ratio if span == "run" else r)

        def least_warmup(span: str, stage: int | None = loc[1] if in_stage else None) -> tuple[int, Any]:
            """The minimum warmup in the span (at most a tenth of its steps) and the timeline it starts on:
            the component's stage, or for the run the first stage."""
            in_run = span == "run" or stage is None
            span_steps = sum(new_steps) if in_run else new_steps[stage]
            return min(rule.min_warmup_steps, span_steps // 10), timelines[0 if in_run else stage]

        def warmup_steps(n: int, span: str = "stage", scale=steps, least=least_warmup) -> int:
            return max(scale(n, span), least(span)[0]) if n else 0

        def warmup_tokens(n: float, span: str = "stage", scale=tokens, least=least_warmup) -> float:
            minimum, timeline = least(span)
            return max(scale(n, span), timeline.tokens_before(minimum)) if n else 0

        scaling = Scaling(length=shrink, vocab_size=rule.vocab_size, steps=steps, warmup_steps=warmup_steps,
                          tokens=tokens, warmup_tokens=warmup_tokens)
        scaled = resolved.component(registries, kind, ref).scaled(scaling)
        schema_keys = {k: getattr(ref, k) for k in type(ref).model_fields if k != "name"}  # e.g. every_steps
        _set(data, loc, {**schema_keys, **scaled})
    for ev in data["evaluators"]:
        if ev.get("every_steps"):
            ev["every_steps"] = max(1, round(ev["every_steps"] * run_ratio))
    if rule.languages:
        problems = offline_languages(data, rule.languages, registries)
        if problems:
            raise RecipeError([RecipeIssue(source, None, None, f"scales.{name}.languages", p) for p in problems])
    data["checkpoint_every"] = max(1, min(data["checkpoint_every"], sum(new_steps) // 4))
    data["log_every"] = max(1, min(data["log_every"], sum(new_steps) // 20))

    issues = []
    for key, value in rule.overrides.items():
        try:
            apply_override(data, key.split("."), value, f"scales.{name}.overrides.{key}")
        except ValueError as exc:
            issues.append(RecipeIssue(source, None, None, f"scales.{name}.overrides.{key}", str(exc)))
    if issues:
        raise RecipeError(issues)
    return validate_data(data, f"{source} (scale {name})", registries)


def _scaled_batch_warmup(spec: dict, full_batch: int, batch: int, token_ratio: float) -> dict:
    """A batch warmup for a stage whose batch becomes ``batch``, of the same shape: its start and rise the
    divisors of ``batch`` nearest the same fractions of it, over the same fraction of the stage's tokens."""
    def nearest_divisor(fraction: float) -> int:
        wanted = fraction * batch
        return min((d for d in range(1, batch + 1) if batch % d == 0), key=lambda d: (abs(d - wanted), d))

    increment = nearest_divisor((spec.get("increment") or spec["start"]) / full_batch)
    start = max(increment, round(spec["start"] / full_batch * batch / increment) * increment)
    return {"start": min(start, batch), "increment": increment, "tokens": spec["tokens"] * token_ratio}


def _scale_steps(steps: int, ratio: float) -> int:
    """A step count times ``ratio``: zero stays zero, anything else stays at least one step."""
    return max(0 if steps == 0 else 1, round(steps * ratio))


def _set(data: dict, loc: tuple, value: Any) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value
