"""``encoder-recipes report``: PNG plots of runs and standalone evaluations.

Inputs are run directories (``metrics.jsonl``, ``eval/step_N.json``,
``eval/details/*.json``) and result files of ``encoder-recipes eval`` (one
point each, e.g. a baseline model). Plots, each written only when some input
has its data:

* ``pppl_by_length.png`` — pseudo-perplexity against length bin, one line per
  evaluated checkpoint or model (001 Figure 2);
* ``alignment_uniformity.png`` — alignment against uniformity, one point per
  checkpoint joined in step order (001 Figure 3);
* ``similarity_<run>.png`` — histograms of the cosine similarities of positive
  and random pairs, one panel per checkpoint (001 Figure 4);
* ``training_curves.png`` — loss, learning rate, mask rate and sequence length
  against the step;
* ``eval_metrics.png`` — the headline evaluation metrics against the step.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The evaluation metrics ``eval_metrics.png`` draws (counts and settings are left out).
HEADLINE = [re.compile(p) for p in (
    r"^mlm/(loss|accuracy)$", r"^retrieval/(recall|mrr)@\d+$", r"^alignment_uniformity/(alignment|uniformity)$",
    r"^fill_mask/top\d+$", r"^finetune/[^/]+/(accuracy|spearman|pearson)$",
)]
_PPPL_BIN = re.compile(r"^pppl/(\d+)-(\d+)$")
_DETAILS = re.compile(r"^(?P<evaluator>.+?)(?:_step_(?P<step>\d+))?$")


@dataclass
class EvalPoint:
    """One evaluation: a checkpoint of a run, or a standalone result file."""

    step: int | None
    stage: str | None
    results: dict[str, Any]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Run:
    name: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    evals: list[EvalPoint] = field(default_factory=list)


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read a run directory or an ``encoder-recipes eval`` result file."""
    path = Path(path)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        label = name or Path(data.get("model", path.stem)).name or path.stem
        return Run(label, evals=[EvalPoint(None, None, data.get("results", {}), data.get("details", {}))])
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a run directory nor an eval result file")
    run = Run(name or path.resolve().name)
    metrics = path / "metrics.jsonl"
    if metrics.exists():
        run.metrics = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    details: dict[int, dict[str, dict]] = {}
    for file in sorted((path / "eval" / "details").glob("*.json")):
        match = _DETAILS.match(file.stem)
        if match and match["step"] is not None:
            details.setdefault(int(match["step"]), {})[match["evaluator"]] = json.loads(file.read_text(encoding="utf-8"))
    for file in sorted((path / "eval").glob("step_*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        step = int(data["step"])
        run.evals.append(EvalPoint(step, data.get("stage"), data.get("results", {}), details.get(step, {})))
    run.evals.sort(key=lambda e: e.step)
    if not run.metrics and not run.evals:
        raise FileNotFoundError(f"{path} holds neither metrics.jsonl nor eval/step_*.json")
    return run


def _point_label(run: Run, point: EvalPoint, many_runs: bool) -> str:
    if point.step is None:
        return run.name
    where = f"step {point.step}" + (f" ({point.stage})" if point.stage else "")
    return f"{run.name}: {where}" if many_runs else where


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_pppl(runs: list[Run], out: Path) -> Path | None:
    """Pseudo-perplexity against length bin, one line per checkpoint/model."""
    lines = []
    for run in runs:
        for point in run.evals:
            bins = sorted((int(m[1]), int(m[2]), v) for k, v in point.results.items()
                          if (m := _PPPL_BIN.match(k)) and isinstance(v, (int, float)))
            if bins:
                lines.append((_point_label(run, point, len(runs) > 1), bins))
    if not lines:
        return None
    plt = _pyplot()
    # x = each bin's upper bound on a log2 axis: models with different bins share one axis
    highs = sorted({hi for _, bins in lines for _, hi, _ in bins})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, bins in lines:
        ax.plot([hi for _, hi, _ in bins], [v for _, _, v in bins], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(highs)
    ax.set_xticklabels([str(h) for h in highs])
    ax.minorticks_off()
    ax.set_xlabel("length bin, upper bound (tokens incl. [CLS]/[SEP])")
    ax.set_ylabel("pseudo-perplexity")
    ax.set_yscale("log")
    ax.set_title("Pseudo-perplexity by sequence length")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "pppl_by_length.png")


def plot_alignment_uniformity(runs: list[Run], out: Path) -> Path | None:
    """Alignment (y) against uniformity (x), one point per checkpoint, joined in step order."""
    series = []
    for run in runs:
        pts = [(p, p.results["alignment_uniformity/uniformity"], p.results["alignment_uniformity/alignment"])
               for p in run.evals if "alignment_uniformity/alignment" in p.results]
        if pts:
            series.append((run, pts))
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for run, pts in series:
        ax.plot([u for _, u, _ in pts], [a for _, _, a in pts], marker="o", label=run.name)
        for point, u, a in pts:
            if point.step is not None:
                ax.annotate(_short(point.step), (u, a), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("uniformity (lower: more spread)")
    ax.set_ylabel("alignment (lower: positives closer)")
    ax.set_title("Alignment and uniformity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "alignment_uniformity.png")


def plot_similarity(run: Run, out: Path, max_panels: int = 8) -> Path | None:
    """Cosine-similarity histograms of positive and random pairs, one panel per checkpoint."""
    points = [p for p in run.evals if "alignment_uniformity" in p.details]
    if not points:
        return None
    if len(points) > max_panels:  # evenly spaced, the last always kept
        points = [points[round(i * (len(points) - 1) / (max_panels - 1))] for i in range(max_panels)]
    plt = _pyplot()
    cols = min(4, len(points))
    rows = (len(points) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharex=True)
    for ax, point in zip(axes.flat, points):
        d = point.details["alignment_uniformity"]
        for kind, colour in (("positive", "tab:blue"), ("random", "tab:orange")):
            edges, counts = d[kind]["edges"], d[kind]["counts"]
            total = sum(counts) or 1
            ax.stairs([c / total for c in counts], edges, fill=True, alpha=0.45, color=colour, label=kind)
        ax.set_title(_point_label(run, point, False), fontsize=9)
        ax.set_xlim(-1, 1)
    for ax in list(axes.flat)[len(points):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("cosine similarity")
    fig.supylabel("share of pairs")
    fig.suptitle(f"Sentence similarity: {run.name}")
    return _save(fig, out / f"similarity_{_slug(run.name)}.png")


def plot_training_curves(runs: list[Run], out: Path) -> Path | None:
    """Loss, learning rate, mask rate and sequence length against the step."""
    with_metrics = [r for r in runs if any("loss" in m and m.get("event") != "eval" for m in r.metrics)]
    if not with_metrics:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for ax, key, title in zip(axes.flat, ("loss", "lr", "mask_rate", "seq_len"),
                              ("training loss", "learning rate", "mask rate", "sequence length")):
        for run in with_metrics:
            rows = [m for m in run.metrics if key in m and m.get("event") != "eval"]
            ax.plot([m["step"] for m in rows], [m[key] for m in rows], label=run.name)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for run in with_metrics:  # stage boundaries
        ends = _stage_ends(run.metrics)
        for ax in axes.flat:
            for step in ends[:-1]:
                ax.axvline(step, color="grey", lw=0.8, ls=":")
    axes[1, 0].set_xlabel("step")
    axes[1, 1].set_xlabel("step")
    if len(with_metrics) > 1:
        axes[0, 0].legend(fontsize=8)
    return _save(fig, out / "training_curves.png")


def plot_eval_metrics(runs: list[Run], out: Path) -> Path | None:
    """The headline evaluation metrics against the step (runs with evaluations at two or more steps)."""
    keys = sorted({k for r in runs for p in r.evals if p.step is not None for k in p.results
                   if any(h.match(k) for h in HEADLINE)})
    if not keys:
        return None
    plt = _pyplot()
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for run in runs:
            pts = [(p.step, p.results[key]) for p in run.evals if p.step is not None and key in p.results]
            if pts:
                ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", label=run.name)
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(runs) > 1:
        axes.flat[0].legend(fontsize=7)
    fig.supxlabel("step")
    return _save(fig, out / "eval_metrics.png")


def make_report(paths: list[str | Path], output: str | Path, names: list[str] | None = None) -> list[Path]:
    """Draw every plot the inputs have data for into ``output``; return the files written."""
    names = list(names or [])
    runs = [load_run(p, names[i] if i < len(names) else None) for i, p in enumerate(paths)]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_pppl(runs, out), plot_alignment_uniformity(runs, out), plot_training_curves(runs, out),
               plot_eval_metrics(runs, out), *(plot_similarity(r, out) for r in runs)]
    return [p for p in written if p is not None]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _short(step: int) -> str:
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def _stage_ends(metrics: list[dict[str, Any]]) -> list[int]:
    ends: dict[str, int] = {}
    for m in metrics:
        if "stage" in m and "step" in m:
            ends[m["stage"]] = max(ends.get(m["stage"], 0), m["step"])
    return sorted(ends.values())


def cmd_report(args: argparse.Namespace) -> int:
    first = Path(args.runs[0])
    output = Path(args.output) if args.output else (first / "report" if first.is_dir() else Path("report"))
    try:
        written = make_report(args.runs, output, args.label)
    except FileNotFoundError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    if not written:
        print("report: nothing to plot (no metrics or evaluations found)", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def add_report_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report`` on the CLI's subparsers (sets ``func=cmd_report``)."""
    p = sub.add_parser("report", help="draw PNG plots from run directories and eval result files",
                       description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_EVAL_JSON",
                   help="run directories (runs/<name>) and/or files written by `encoder-recipes eval`")
    p.add_argument("--output", help="folder for the PNGs (default: <first run>/report)")
    p.add_argument("--label", action="append", help="legend name of each input, in order (default: folder name)")
    p.set_defaults(func=cmd_report)
    return p
