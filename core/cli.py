"""The ``encoder-recipes`` command line.

Every command that takes a recipe accepts a registered name or a path, and
trailing ``key.path=value`` overrides (``stages.stage1.lr=1e-4``; list items
by position or by name). Errors in recipes print one line per issue —
``file:line:column: field: message``.

Exit status: 0 success; 1 ``diff`` found a difference, or a run or a data
fetch failed; 2 an invalid recipe (``validate`` included) or invalid
arguments (argparse's own status); 130 a run stopped by a signal.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from encoder_recipes import __version__
from encoder_recipes.names import hint
from encoder_recipes.recipe_files import RecipeError

EXIT_INVALID = 2


def _floats(text: str) -> list[float]:
    """``8,3`` → [8.0, 3.0]: a figure per stage, or one."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _registries():
    """The installed plugins' registries, loaded once: the CLI is where they are built (a composition
    root); every command, here or in the module that owns it, gets them from here (``args.registries()``)."""
    from encoder_recipes.registry import default_registries

    return default_registries()


def _load(args: argparse.Namespace, ref: str | None = None, scale: str | None = None):
    from encoder_recipes.validation import load_recipe

    return load_recipe(ref or args.recipe, overrides=getattr(args, "overrides", []) or [],
                       scale=scale if scale is not None else getattr(args, "scale", None),
                       registries=_registries())


def _dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def human(n: float) -> str:
    for unit, size in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(f"{str(x):<{w}}" for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


# --- commands ------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from encoder_recipes.plan import build_plan
    from encoder_recipes.validation import load_recipe

    reg = _registries()
    rows = []
    for name in reg.recipes.names():
        entry = reg.recipes.get(name)
        try:
            recipe = load_recipe(str(entry.path), registries=reg).recipe
        except RecipeError as exc:
            rows.append({"name": name, "language": "?", "plugin": entry.plugin, "stages": 0,
                         "final_context": 0, "description": f"INVALID: {exc.issues[0]}", "path": str(entry.path)})
            continue
        plan = build_plan(recipe, reg)
        rows.append({"name": name, "language": recipe.metadata.language, "plugin": entry.plugin,
                     "stages": len(recipe.stages), "final_context": plan.stages[-1].lengths[-1],
                     "description": recipe.metadata.description, "path": str(entry.path)})
    rows = [r for r in rows if (not args.language or r["language"] == args.language)
            and (not args.plugin or r["plugin"] == args.plugin)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print(table([[r["name"], r["language"], r["plugin"], r["stages"], r["final_context"], r["description"]]
                     for r in rows], ["name", "language", "plugin", "stages", "context", "description"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    resolved = _load(args)
    print(_dump(resolved.to_dict(), args.format), end="" if args.format == "yaml" else "\n")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from encoder_recipes.validation import load_recipe

    status = 0
    for path in args.files:
        try:
            load_recipe(path, overrides=args.overrides, scale=args.scale, registries=_registries())
            print(f"{path}: ok")
        except RecipeError as exc:
            status = EXIT_INVALID
            for issue in exc.issues:
                print(issue, file=sys.stderr)
    return status


def cmd_diff(args: argparse.Namespace) -> int:
    from encoder_recipes.diff import diff_dicts, render_json, render_markdown, render_text

    left = _load(args, args.left).to_dict()
    right = _load(args, args.right).to_dict()
    rows = diff_dicts(left, right, include_equal=args.all)
    if args.json:
        print(render_json(rows))
    elif args.md:
        print(render_markdown(rows, args.left, args.right))
    else:
        print(render_text(rows, args.left, args.right))
    return 1 if any(r.differs for r in rows) else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from encoder_recipes.plan import build_plan

    resolved = _load(args)
    registries = _registries()
    plan = build_plan(resolved.recipe, registries)
    hardware = None
    if args.gpus:
        from encoder_recipes.hardware import gpu as gpu_named
        from encoder_recipes.plan_hardware import hardware_plan, mfu_per_stage

        try:
            mfu = mfu_per_stage(plan, gpus=args.gpus, gpu=gpu_named(args.gpu), mfu=args.mfu, days=args.days,
                                hours=args.hours)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        hardware = hardware_plan(resolved.recipe, plan, registries, gpus=args.gpus, gpu=args.gpu, mfu=mfu)
    elif args.days or args.hours or args.mfu:
        print("error: --mfu, --days and --hours need --gpus", file=sys.stderr)
        return 2
    if args.json:
        out = plan.to_dict()
        if hardware is not None:
            out["hardware"] = {"gpus": args.gpus, "gpu": args.gpu, "stages": [s.to_dict() for s in hardware]}
        print(json.dumps(out, indent=2))
        return 0
    rows = []
    for s in plan.stages:
        lengths = "→".join(str(x) for x in s.lengths)
        rate = f"{s.mask_rate_start:.2f}" + (f"→{s.mask_rate_end:.2f}" if s.mask_rate_end != s.mask_rate_start else "")
        rows.append([s.name, f"{s.steps:,}", f"{s.batch_size:,}", lengths, human(s.tokens), f"{s.lr:g}",
                     s.lr_schedule, f"{s.masking} {rate}", s.packing,
                     f"{s.global_rope_theta:g}/{s.local_rope_theta:g}", f"{s.flops:.3g}"])
    scale = f" (scale {resolved.scale})" if resolved.scale else ""
    print(f"{resolved.recipe.metadata.name}{scale}: {plan.total_steps:,} steps, {human(plan.total_tokens)} tokens, "
          f"{plan.total_flops:.3g} training FLOPs (estimate)")
    if plan.params:
        print(f"parameters: {human(plan.params['total'])} total, {human(plan.params['layers'])} without embeddings")
    print(table(rows, ["stage", "steps", "batch", "seq len", "tokens", "lr", "schedule", "masking", "packing",
                       "rope θ g/l", "FLOPs"]))
    for s in plan.stages:  # the warmups, in both units
        if len(s.batch_sizes) > 1:
            print(f"{s.name}: batch warmup {s.batch_sizes[0]:,}→{s.batch_size:,} sequences, rising by "
                  f"{s.batch_sizes[1] - s.batch_sizes[0]:,}, in {s.batch_warmup_steps:,} steps, "
                  f"{human(s.batch_warmup_tokens)} tokens")
        if s.lr_warmup_steps:
            print(f"{s.name}: LR warmup {s.lr_warmup_steps:,} steps, {human(s.lr_warmup_tokens)} tokens")
    if hardware is not None:
        from encoder_recipes.plan_hardware import hardware_lines

        print("\n".join(hardware_lines(resolved.recipe, hardware, gpus=args.gpus, gpu=args.gpu,
                                       data_workers=args.data_workers or max(1, resolved.recipe.data_workers),
                                       reported=bool(args.days or args.hours))))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = _registries()
    out = []
    for info in reg.loaded.plugins.values():
        out.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                    "module": info.module, "path": info.path, "hooks": info.hooks,
                    "contributes": reg.contributions(info.name)})
    failures = [vars(f) for f in reg.loaded.failures]
    if args.json:
        print(json.dumps({"plugins": out, "failures": failures}, indent=2))
        return 0
    for p in out:
        print(f"{p['name']}  ({p['distribution']} {p['version']})  {p['path']}")
        print(f"  hooks: {', '.join(h.removeprefix('encoder_recipes_') for h in p['hooks'])}")
        for kind, names in p["contributes"].items():
            print(f"  {kind}: {', '.join(names)}")
    for f in failures:
        print(f"FAILED {f['name']} ({f['distribution']}) in {f['stage']}: {f['error']}")
    return 0


def cmd_components(args: argparse.Namespace) -> int:
    reg = _registries()
    kinds = [args.kind] if args.kind else list(reg.components)
    if args.kind and args.kind not in reg.components:
        print(f"unknown kind {args.kind!r}{hint(args.kind, reg.components)}; known: {', '.join(reg.components)}",
              file=sys.stderr)
        return EXIT_INVALID
    data = {kind: {name: {"plugin": reg.components[kind].owners[name], "summary": cls.summary(),
                          "params": cls.Params.model_json_schema()}
                   for name, cls in sorted(reg.components[kind].entries.items())} for kind in kinds}
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    for kind in kinds:
        print(f"{kind}: {reg.components[kind].description}")
        for name, entry in data[kind].items():
            print(f"  {name}  [{entry['plugin']}]  {entry['summary']}")
            for field, spec in entry["params"].get("properties", {}).items():
                default = f" = {json.dumps(spec['default'])}" if "default" in spec else ""
                print(f"      {field}{default}  {spec.get('description', '')}".rstrip())
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    from encoder_recipes.validation import recipe_path

    src = recipe_path(args.name, _registries())
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not args.force:
        print(f"{dest} exists; pass --force to overwrite", file=sys.stderr)
        return 1
    shutil.copyfile(src, dest)
    print(f"copied {src} -> {dest}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from encoder_recipes.docs import recipe_json_schema, recipe_reference_markdown

    reg = _registries()
    if args.markdown:
        print(recipe_reference_markdown(reg), end="")
    else:
        print(json.dumps(recipe_json_schema(reg), indent=2))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from encoder_recipes.data.samples import SampleCorpusUnavailable, ensure_samples, registered_corpora

    reg = _registries()
    corpora = registered_corpora(reg)
    by_language = {corpora.get(n).language: n for n in reversed(corpora.names())}  # first name per language
    unknown = sorted(set(args.language or []) - set(by_language))
    if unknown:
        print(f"no plugin registers a sample corpus for {', '.join(unknown)}; registered languages: "
              f"{', '.join(sorted(by_language))}", file=sys.stderr)
        return 1
    names = [by_language[lang] for lang in args.language] if args.language else corpora.names()
    try:
        paths = ensure_samples(names, force=args.force, registries=reg)
    except SampleCorpusUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for lang, path in paths.items():
        print(f"{lang}: {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from encoder_recipes.evaluation.report import load_run, plot_training_curves

    written = plot_training_curves([load_run(args.run_dir)], Path(args.output or Path(args.run_dir) / "plots"))
    if written is None:
        print(f"{args.run_dir} has no training metrics to plot", file=sys.stderr)
        return 1
    print(written)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from encoder_recipes.data.prepare import prepare_from_args

    return prepare_from_args(args)


def cmd_run(args: argparse.Namespace) -> int:
    from encoder_recipes.training.run import run_from_args

    return run_from_args(args)


# --- parser --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from encoder_recipes.hardware import GPUS

    parser = argparse.ArgumentParser(prog="encoder-recipes", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def recipe_cmd(name: str, helptext: str, func, scale: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("recipe", help="registered recipe name or path to a YAML file")
        if scale:
            p.add_argument("--scale", help="apply a named scale, e.g. smoke")
        p.add_argument("overrides", nargs="*", metavar="key.path=value", help="override resolved values")
        p.set_defaults(func=func)
        return p

    p = sub.add_parser("list", help="list registered recipes")
    p.add_argument("--json", action="store_true")
    p.add_argument("--language")
    p.add_argument("--plugin")
    p.set_defaults(func=cmd_list)

    p = recipe_cmd("show", "print the fully resolved recipe, defaults included", cmd_show)
    p.add_argument("--format", choices=["yaml", "json"], default="yaml")

    p = sub.add_parser("diff", help="key-path diff of two resolved recipes (exit 1 when they differ)")
    p.add_argument("left")
    p.add_argument("right")
    p.add_argument("--scale")
    p.add_argument("--all", action="store_true", help="show equal keys too")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--md", action="store_true")
    p.set_defaults(func=cmd_diff, overrides=[])

    p = sub.add_parser("validate", help="validate recipe files; report every error at once")
    p.add_argument("files", nargs="+")
    p.add_argument("--scale")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="key.path=value")
    p.set_defaults(func=cmd_validate)

    p = recipe_cmd("plan", "per stage: steps, sequences, tokens and FLOPs", cmd_plan)
    p.add_argument("--json", action="store_true")
    p.add_argument("--gpus", type=int, help="also show each stage's time, memory per GPU and data rate on this many GPUs")
    p.add_argument("--gpu", default="h100", choices=list(GPUS), help="GPU model for --gpus (default h100)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--mfu", type=float, help="model FLOPs utilisation the times assume (default 0.4)")
    when.add_argument("--days", type=_floats, help="the time taken, in days: one per stage (8,3) or one in all; "
                      "plan then shows the MFU it implies")
    when.add_argument("--hours", type=_floats, help="as --days, in hours")
    p.add_argument("--data-workers", type=int,
                   help="data workers (cores) each rank's store reader gets, for the data-rate check "
                        "(default: the recipe's data_workers, at least 1)")

    p = sub.add_parser("plugins", help="loaded plugins and what each contributes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("components", help="registered components and their params")
    p.add_argument("kind", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_components)

    p = sub.add_parser("cp", help="copy a registered recipe to edit")
    p.add_argument("name")
    p.add_argument("dest")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_cp)

    p = sub.add_parser("schema", help="the recipe JSON Schema, components' params included")
    p.add_argument("--markdown", action="store_true", help="the recipe reference page (docs/recipe-reference.md)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("data", help="offline sample corpora")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    ps = data_sub.add_parser("samples", help="fetch and convert the sample corpus into the cache")
    ps.add_argument("--language", action="append", help="a language a plugin registers a sample corpus for (default: all)")
    ps.add_argument("--force", action="store_true")
    ps.set_defaults(func=cmd_data)

    from encoder_recipes.evaluation.report import add_report_parser
    from encoder_recipes.evaluation.standalone import add_eval_parser

    from encoder_recipes.scaffold import add_new_plugin_parser

    add_eval_parser(sub)
    add_report_parser(sub)
    add_new_plugin_parser(sub)
    p = sub.add_parser("plot", help="loss, LR, mask rate and sequence length against step, as PNG")
    p.add_argument("run_dir")
    p.add_argument("--output", help="folder for the PNG (default: RUN_DIR/plots)")
    p.set_defaults(func=cmd_plot)

    p = recipe_cmd("prepare", "tokenise the recipe's data once into a sharded store for training", cmd_prepare)
    p.add_argument("--output", help="store folder or object-store URL (default: stores/<recipe>[-<scale>])")
    p.add_argument("--workers", type=int, help="tokenising processes (default: every core)")
    p.add_argument("--overwrite", action="store_true", help="start the store afresh")

    p = recipe_cmd("run", "train: every stage of the recipe, with checkpoints and export", cmd_run)
    p.add_argument("--output", help="run directory (default: runs/<recipe>-<scale>)")
    p.add_argument("--resume", help="auto (newest complete checkpoint) or a checkpoint path")
    p.add_argument("--allow-config-change", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a run directory that holds a run")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--max-steps", type=int, help="stop after this many global steps (for trials)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after options (`show R --scale smoke seed=5`):
    # argparse leaves those after an option unparsed, so collect them here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(x.startswith("-") or "=" not in x for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*(args.overrides or []), *extra]
    args.registries = _registries
    try:
        return args.func(args)
    except RecipeError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
