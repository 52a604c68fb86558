"""``encoder-recipes report`` draws PNGs from what the evaluators and the trainer write."""

from __future__ import annotations

import argparse
import json

import matplotlib.image
import pytest

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.embeddings import AlignmentUniformityEvaluator
from encoder_recipes.evaluation.pppl import PseudoPerplexityEvaluator
from encoder_recipes.evaluation.report import add_report_parser, load_run, make_report

from .conftest import help_pages, tiny_modernbert

DOCS = [p["text"] for p in help_pages()]


def write_run(folder, tokenizer) -> None:
    """A run directory as the trainer leaves it: metrics.jsonl, eval/step_N.json, eval/details/."""
    folder.mkdir()
    lines = [{"step": s, "stage": "short" if s <= 10 else "long", "loss": 7 - s / 5, "lr": 1e-3 * s / 20,
              "mask_rate": 0.3 if s <= 10 else 0.15, "seq_len": 32 if s <= 10 else 64} for s in range(2, 21, 2)]
    for step, seed in ((10, 1), (20, 2)):
        model = tiny_modernbert(tokenizer, seed=seed)
        ctx = EvalContext(language="en", documents=lambda: iter(DOCS), seed=0, step=step, out_dir=folder)
        results = {}
        for name, evaluator in (("pppl", PseudoPerplexityEvaluator(bins=[[0, 32], [32, 64]], sequences_per_bin=2,
                                                                    positions=2)),
                                ("alignment_uniformity", AlignmentUniformityEvaluator(num_positive=10, num_random=10))):
            scores = evaluator.evaluate(model=model, tokenizer=tokenizer, context=ctx)
            results.update({f"{name}/{k}": v for k, v in scores.items() if isinstance(v, (int, float, str))})
        (folder / "eval" / f"step_{step:08d}.json").write_text(
            json.dumps({"step": step, "stage": "short" if step <= 10 else "long", "results": results}))
        lines.append({"step": step, "event": "eval", **results})
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("runs") / "run"
    write_run(folder, tokenizer)
    return folder


def test_report_draws_every_plot(tmp_path, run_dir):
    baseline = tmp_path / "baseline.json"  # as `encoder-recipes eval` writes it
    baseline.write_text(json.dumps({"model": "/models/other-model", "results": {
        "pppl/0-32": 50.0, "pppl/32-64": 40.0, "alignment_uniformity/alignment": 0.5,
        "alignment_uniformity/uniformity": -2.0}, "details": {}}))

    run = load_run(run_dir)
    assert [p.step for p in run.evals] == [10, 20]
    assert "alignment_uniformity" in run.evals[0].details

    written = make_report([run_dir, baseline], tmp_path / "report")
    names = sorted(p.name for p in written)
    assert names == ["alignment_uniformity.png", "eval_metrics.png", "pppl_by_length.png", "similarity_run.png",
                     "training_curves.png"]
    for path in written:
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 200  # a real picture, not an empty file


def test_report_command(tmp_path, run_dir, capsys):
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(run_dir), "--label", "tiny", "--output", str(tmp_path / "out")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "out" / "pppl_by_length.png") in printed
    assert (tmp_path / "out" / "similarity_tiny.png").exists()


def test_missing_inputs_are_reported(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(tmp_path / "nothing")])
    assert args.func(args) == 2
    assert "neither" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path)  # an empty directory
