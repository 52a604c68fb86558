"""``encoder-recipes eval``: run evaluators on any Hugging Face masked-LM directory.

The directory may be an export of this project (``runs/<name>/final``) or any
model a user has on disk (``save_pretrained`` of a ``*ForMaskedLM`` with its
tokenizer), so checkpoints and baselines are scored on the same data. The
validation documents are the language's offline sample corpus
(``validation.jsonl``) unless ``--documents`` names a file. Results print as a
table (or JSON with ``--json``) and are written to a JSON file whose
``results`` have the same ``<evaluator>/<metric>`` keys as a run's
``eval/step_N.json``, plus each evaluator's ``details`` (histograms,
per-probe predictions, …) — ``encoder-recipes report`` draws from either.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

PRIMITIVES = (int, float, str, bool)


def card_language(model_dir: str | Path) -> str | None:
    """The ``language:`` of a model card's YAML front matter (``README.md``), if there is one."""
    card = Path(model_dir) / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError):
        return None
    language = meta.get("language") if isinstance(meta, dict) else None
    if isinstance(language, list):
        language = language[0] if language else None
    return str(language) if language else None


def documents_from_file(path: str | Path) -> Callable[[], Iterator[str]]:
    """A documents factory over a local file: ``.jsonl`` rows with ``text``, or plain text, one document a line."""
    path = Path(path)

    def documents() -> Iterator[str]:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                yield json.loads(line)["text"] if path.suffix == ".jsonl" else line.rstrip("\n")

    return documents


def _lazy_sample_documents(language: str) -> Callable[[], Iterator[str]]:
    # Read the sample corpus only when an evaluator asks for documents, so that
    # e.g. fill_mask runs where the corpus was never fetched.
    def documents() -> Iterator[str]:
        from encoder_recipes.evaluation.offline_data import sample_documents

        return sample_documents(language)()

    return documents


def parse_params(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``["pppl.sequences_per_bin=4", ...]`` → ``{"pppl": {"sequences_per_bin": 4}}`` (values read as YAML)."""
    params: dict[str, dict[str, Any]] = {name: {} for name in names}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or not field:
            raise ValueError(f"--set {item!r}: expected EVALUATOR.param=value")
        if name not in params:
            raise ValueError(f"--set {item!r}: evaluator {name!r} is not among the --evaluator names {names}")
        params[name][field] = yaml.safe_load(value)
    return params


def evaluate_model_dir(
    model_dir: str | Path,
    evaluators: list[tuple[str, dict[str, Any]]],
    *,
    language: str | None = None,
    documents: Callable[[], Iterator[str]] | None = None,
    device: str | None = None,
    seed: int = 0,
    registries: Any,
    trust_remote_code: bool = False,
    log: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    """Load ``model_dir`` and run each ``(evaluator name, params)``; return the JSON-ready results.

    :param language: the evaluation language (None: the model card's ``language:``).
    :param documents: validation documents (None: the language's sample corpus).
    """
    import torch
    import transformers
    from transformers import AutoTokenizer

    from encoder_recipes import __version__
    from encoder_recipes.evaluation.context import EvalContext
    from encoder_recipes.evaluation.embeddings import max_positions
    from encoder_recipes.modeling.export import load_model
    from encoder_recipes.schema import EvalDefaults
    from encoder_recipes.training.distributed import pick_device

    # every name and its params are checked before the model is loaded
    components = [registries.component("evaluator", name)(**params) for name, params in evaluators]
    language = language or card_language(model_dir)
    if not language:
        raise ValueError(f"{model_dir} has no model card naming its language; pass --language")
    torch_device = pick_device(device)
    defaults = EvalDefaults()
    model = load_model(model_dir, trust_remote_code=trust_remote_code).to(torch_device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    context = EvalContext(
        language=language, device=torch_device, documents=documents or _lazy_sample_documents(language),
        seq_len=min(defaults.seq_len, max_positions(model) or defaults.seq_len),
        segmenter=registries.word_segmenter(language),
        seed=seed, registries=registries,
    )
    results: dict[str, Any] = {}
    details: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for component in components:
        started = time.perf_counter()
        scores = component.evaluate(model=model, tokenizer=tokenizer, context=context)
        timings[component.name] = round(time.perf_counter() - started, 3)
        results.update({f"{component.name}/{k}": v for k, v in scores.items() if isinstance(v, PRIMITIVES)})
        if isinstance(scores.get("details"), dict):
            details[component.name] = scores["details"]
        if log:
            log(f"{component.name}: done in {timings[component.name]:.1f} s")
    return {
        "model": str(model_dir), "model_type": getattr(model.config, "model_type", None), "language": language,
        "evaluators": [{"name": c.name, **c.params.model_dump(mode="json")} for c in components],
        "results": results, "details": details, "seconds": timings,
        "versions": {"encoder_recipes": __version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }


def format_table(results: dict[str, Any]) -> str:
    """``metric  value`` lines, floats to four significant digits."""
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in results.items()]
    width = max((len(k) for k, _ in rows), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    return "\n".join(lines + [f"{k:<{width}}  {v}" for k, v in rows])


def cmd_eval(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from encoder_recipes.data.samples import SampleCorpusMissing
    from encoder_recipes.registry import RegistryError

    names = list(dict.fromkeys(args.evaluator))
    try:
        params = parse_params(args.set or [], names)
        out = evaluate_model_dir(
            args.model_dir, [(n, params[n]) for n in names], language=args.language,
            documents=documents_from_file(args.documents) if args.documents else None,
            device=args.device, seed=args.seed, trust_remote_code=args.trust_remote_code, registries=args.registries(),
            log=lambda msg: print(msg, file=sys.stderr),
        )
    except (ValueError, RegistryError, ValidationError, SampleCorpusMissing, FileNotFoundError, OSError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else Path(f"eval-{Path(args.model_dir).resolve().name}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "details"}, indent=2, ensure_ascii=False))
    else:
        print(f"{out['model']} ({out['model_type']}, {out['language']})")
        print(format_table(out["results"]))
    print(f"wrote {output}", file=sys.stderr)
    return 0


def add_eval_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``eval`` on the CLI's subparsers (sets ``func=cmd_eval``)."""
    p = sub.add_parser("eval", help="run evaluators on a masked-LM directory (ours or any transformers save)",
                       description=__doc__.splitlines()[0])
    p.add_argument("model_dir", help="a Hugging Face masked-LM directory (config.json, weights, tokenizer)")
    p.add_argument("--evaluator", "-e", action="append", required=True, metavar="NAME",
                   help="mlm, pppl, alignment_uniformity, retrieval, fill_mask, finetune (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="NAME.param=value",
                   help="an evaluator param, value read as YAML (e.g. pppl.sequences_per_bin=4)")
    p.add_argument("--language", help="evaluation language (default: the model card's language)")
    p.add_argument("--documents", help="validation documents: .jsonl with 'text', or .txt one per line "
                                       "(default: the language's sample corpus)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--output", help="results file (default: eval-<model dir name>.json)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="seed of every sampled set (same seed, same data)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run modelling code shipped in the directory (auto_map)")
    p.set_defaults(func=cmd_eval)
    return p
