"""The model card (README.md) written into ``final/``: recipe, sources, scale, data, versions."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch
import transformers
import yaml

from encoder_recipes import __version__
from encoder_recipes.plan import Plan
from encoder_recipes.training.summary import summary_markdown
from encoder_recipes.validation import ResolvedRecipe


def model_card(resolved: ResolvedRecipe, plan: Plan, run_dir: Path, summary: dict | None = None) -> str:
    """The card; ``summary`` is the end-of-run record (:mod:`encoder_recipes.training.summary`)."""
    recipe = resolved.recipe
    meta = recipe.metadata
    scale = resolved.scale or "full"
    lines = [
        "---",
        f"language: {meta.language}",
        "library_name: transformers",
        "pipeline_tag: fill-mask",
        "tags: [modernbert, encoder-recipes]",
        "---",
        "",
        f"# {meta.name} ({scale} scale)",
        "",
        meta.description,
        "",
        f"Trained with encoder-recipes {__version__} from `{resolved.source}`"
        + (f" at the `{scale}` scale" if resolved.scale else "") + ".",
    ]
    if resolved.scale:
        lines += ["", f"This is a **{scale}-scale** run: a tiny model on a small offline corpus that shows the "
                  "recipe's machinery works. It is not the model the sources describe."]
    if resolved.overrides:
        lines += ["", "Command-line overrides: " + ", ".join(f"`{o}`" for o in resolved.overrides)]
    if summary is not None:
        lines += ["", *summary_markdown(summary)]
    lines += ["", "## Sources", ""]
    lines += [f"- {s.title}" + (f" ({s.url})" if s.url else "") for s in meta.sources] or ["- none given"]
    lines += ["", "## Stages", "", "| stage | steps | batch | sequence length | tokens | peak LR | masking | packing | RoPE θ global/local |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in plan.stages:
        rate = f"{s.mask_rate_start:.2f}" + (f"→{s.mask_rate_end:.2f}" if s.mask_rate_end != s.mask_rate_start else "")
        lines.append(f"| {s.name} | {s.steps} | {s.batch_size} | {'→'.join(map(str, s.lengths))} | {s.tokens:.3g} "
                     f"| {s.lr:g} | {s.masking} {rate} | {s.packing} | {s.global_rope_theta:g}/{s.local_rope_theta:g} |")
    lines += ["", "## Data", ""]
    for src in recipe.data.sources:
        where = src.sample and f"offline sample corpus `{src.sample}`" or src.dataset or ", ".join(src.paths)
        lines.append(f"- `{src.name}`: {where}")
    evals = sorted(Path(run_dir, "eval").glob("*.json")) if Path(run_dir, "eval").is_dir() else []
    if evals:
        lines += ["", "## Evaluation", ""]
        for path in evals:
            lines.append(f"- `{path.stem}`: `{json.dumps(json.loads(path.read_text()), ensure_ascii=False)[:500]}`")
    lines += ["", "## Versions", "",
              f"- encoder-recipes {__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
              f"Python {platform.python_version()}",
              "", "## Resolved recipe", "", "```yaml",
              yaml.safe_dump(resolved.to_dict(), sort_keys=False, allow_unicode=True).rstrip(), "```", ""]
    return "\n".join(lines)
