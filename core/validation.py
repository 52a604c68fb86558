"""Turning a recipe reference into a validated, fully resolved :class:`Recipe`.

Order: read the file → follow ``extends`` → validate against the schema →
check every component against its registry and its own ``Params`` → check
the cross-field rules (lengths, stage order, mixtures, segmenters, plugins)
→ apply a named scale → apply command-line overrides → validate again.

Every problem is collected, not just the first, and each names the file,
line, column and field path (``stages[1].masking.rate``).
"""

from __future__ import annotations

import copy
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from encoder_recipes.components.base import Component
from encoder_recipes.components.kinds import KINDS
from encoder_recipes.names import field_path, hint
from encoder_recipes.recipe_files import (
    PosDict,
    RecipeError,
    RecipeIssue,
    apply_override,
    load_yaml_file,
    locate,
    parse_override,
    resolve_extends,
)
from encoder_recipes.schema import ComponentRef, Recipe
from encoder_recipes.registry import Registries, UnknownNameError



@dataclass
class ResolvedRecipe:
    """A recipe after extends, validation, scale and overrides, with where it came from."""

    recipe: Recipe
    source: str
    scale: str | None = None
    overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.recipe.model_dump(mode="json")

    def component(self, registries: Registries, kind: str, ref: ComponentRef) -> Component:
        """Instantiate a resolved component reference."""
        cls = registries.component(kind, ref.name)
        return cls(cls.Params(**ref.params))  # a reference's own schema fields (every_steps) are not params


# --- finding recipe files --------------------------------------------------------


def find_recipe(ref: str, registries: Registries, from_file: str | None = None) -> Path | None:
    """A registered name, or a path (relative to the referring file, then to the cwd)."""
    candidates = []
    if from_file:
        candidates.append(Path(from_file).parent / ref)
    candidates.append(Path(ref))
    for path in candidates:
        if path.suffix in {".yaml", ".yml"} and path.is_file():
            return path
    if ref in registries.recipes:
        return registries.recipes.get(ref).path
    return None


def recipe_path(ref: str, registries: Registries) -> Path:
    path = find_recipe(ref, registries)
    if path is None:
        known = registries.recipes.names()
        raise RecipeError([RecipeIssue(ref, None, None, "",
                                       f"no recipe file or registered recipe named {ref!r}{hint(ref, known)}; "
                                       f"registered: {', '.join(known) or 'none'}")])
    return path


# --- the pipeline -----------------------------------------------------------------


def load_recipe(
    ref: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    scale: str | None = None,
    registries: Registries,
) -> ResolvedRecipe:
    """Read, resolve and validate a recipe; raise :class:`RecipeError` listing every issue.

    :param registries: the loaded plugins' registries, built by the caller (the CLI, a test fixture).
    """
    path = recipe_path(str(ref), registries)
    raw = load_yaml_file(path)
    if not isinstance(raw, dict):
        raise RecipeError([RecipeIssue(str(path), 1, 1, "", "a recipe must be a mapping of keys to values")])
    raw = resolve_extends(raw, str(path), lambda r, f: find_recipe(r, registries, f),
                          known=registries.recipes.names())
    recipe = validate_data(raw, str(path), registries)
    resolved = ResolvedRecipe(recipe, str(path))
    if scale:
        from encoder_recipes.scale import apply_scale

        resolved.recipe = apply_scale(resolved.recipe, scale, registries, source=str(path))
        resolved.scale = scale
    if overrides:
        data = copy.deepcopy(resolved.recipe.model_dump(mode="python"))
        issues = []
        for text in overrides:
            try:
                parts, value = parse_override(text)
                apply_override(data, parts, value, text)
            except ValueError as exc:
                issues.append(RecipeIssue("<command line>", None, None, text.split("=", 1)[0], str(exc)))
        if issues:
            raise RecipeError(issues)
        resolved.recipe = validate_data(data, "<command line overrides>", registries)
        resolved.overrides = list(overrides)
    return resolved


def validate_data(raw: Any, file: str, registries: Registries) -> Recipe:
    """Schema, components and cross-field rules; every issue at once."""
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        # every error at once: unknown component names too, though the schema stopped short of them
        raise RecipeError(_issues_from_validation(exc, raw, file, Recipe)
                          + _unknown_components(raw, file, registries)) from None
    issues: list[RecipeIssue] = []
    resolved_refs: dict[tuple, ComponentRef] = {}
    for loc, kind, ref in component_refs(recipe):
        new_ref = _resolve_component(ref, kind, loc, raw, file, registries, issues)
        if new_ref is not None:
            resolved_refs[loc] = new_ref
    if issues:
        raise RecipeError(issues)
    recipe = _replace_refs(recipe, resolved_refs)
    issues.extend(_cross_checks(recipe, raw, file, registries))
    if issues:
        raise RecipeError(issues)
    return recipe


def component_refs(recipe: Recipe) -> list[tuple[tuple, str, ComponentRef]]:
    """Where each component reference sits in a recipe, and its kind, in the schema's field order.

    The slots come from :data:`~encoder_recipes.components.kinds.KINDS`.
    """
    # a slot may also hold a shorthand that is not a reference (a mixture's mapping of weights)
    refs = [(loc, kind.name, ref) for kind in KINDS.values() for slot in kind.slots
            for loc, ref in _expand(recipe, slot) if isinstance(ref, ComponentRef)]
    return sorted(refs, key=lambda found: _schema_order(found[0]))


def _unknown_components(raw: Any, file: str, registries: Registries) -> list[RecipeIssue]:
    """Component references in raw (not yet valid) recipe data that name no registered component."""
    issues = []
    for kind in KINDS.values():
        for slot in kind.slots:
            for loc, ref in _expand_raw(raw, slot):
                name = ref.get("name") if isinstance(ref, dict) else None
                if isinstance(name, str) and name not in registries.components[kind.name]:
                    issues.append(_issue(raw, file, (*loc, "name"),
                                         UnknownNameError(kind.name, name, registries.components[kind.name].names()).message))
    return sorted(issues, key=lambda issue: (issue.line or 0, issue.column or 0))


def _expand_raw(node: Any, slot: tuple[str, ...], loc: tuple = ()) -> list[tuple[tuple, Any]]:
    """Like :func:`_expand`, over plain data that may lack keys or hold the wrong types."""
    if not slot:
        return [(loc, node)]
    head, rest = slot[0], slot[1:]
    if head == "*":
        items = node if isinstance(node, list) else []
        return [found for i, item in enumerate(items) for found in _expand_raw(item, rest, (*loc, i))]
    if not isinstance(node, dict) or head not in node:
        return []
    return _expand_raw(node[head], rest, (*loc, head))


def _expand(node: Any, slot: tuple[str, ...], loc: tuple = ()) -> list[tuple[tuple, Any]]:
    """The values at a slot path (``"*"``: every list item), with their field paths."""
    if not slot:
        return [(loc, node)]
    head, rest = slot[0], slot[1:]
    if head == "*":
        return [found for i, item in enumerate(node) for found in _expand(item, rest, (*loc, i))]
    return _expand(getattr(node, head), rest, (*loc, head))


def _schema_order(loc: tuple) -> tuple:
    """A field path as positions in the schema (fields in declaration order, list items by index)."""
    key, model = [], Recipe
    for part in loc:
        if isinstance(part, int):
            key.append(part)
            continue
        names = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
        key.append(names.index(part) if part in names else len(names))
        model = _model_in(model.model_fields[part].annotation) if part in names else None
    return tuple(key)


def _resolve_component(ref: ComponentRef, kind: str, loc: tuple, raw: Any, file: str,
                       registries: Registries, issues: list[RecipeIssue]) -> ComponentRef | None:
    try:
        cls = registries.component(kind, ref.name)
    except UnknownNameError as exc:
        issues.append(_issue(raw, file, (*loc, "name"), exc.message))
        return None
    # fields the reference's schema declares (an evaluator's every_steps, the optimizer's grad_clip) are the
    # host's settings, not the component's params: kept as they are
    host = {k: getattr(ref, k) for k in type(ref).model_fields if k != "name"}
    try:
        params = cls.Params.model_validate(ref.params)
    except ValidationError as exc:
        issues.extend(_issues_from_validation(exc, raw, file, cls.Params, prefix=loc, what=f"{kind} {ref.name!r}",
                                              also_known=tuple(host)))
        return None
    return type(ref).model_validate({"name": ref.name, **host, **params.model_dump(mode="python")})


def _replace_refs(recipe: Recipe, refs: dict[tuple, ComponentRef]) -> Recipe:
    data = recipe.model_dump(mode="python")
    for loc, ref in refs.items():
        node = data
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = ref.model_dump(mode="python")
    return Recipe.model_validate(data)


def _cross_checks(recipe: Recipe, raw: Any, file: str, registries: Registries) -> list[RecipeIssue]:
    """Rules that span fields: lengths fit the model, context does not shrink
    unless allowed, mixtures name sources, whole-word masking has a segmenter,
    required plugins are loaded; then each component's own ``check``."""
    issues: list[RecipeIssue] = [
        _issue(raw, file, loc, f"must be a finite number, got {value}")
        for loc, value in _non_finite(recipe.model_dump(mode="python"))
    ]
    loaded = set(registries.loaded.plugins)
    for i, name in enumerate(recipe.metadata.requires):
        if name not in loaded:
            issues.append(_issue(raw, file, ("metadata", "requires", i),
                                 f"needs plugin {name!r}, which is not installed or failed to load; "
                                 f"loaded: {', '.join(sorted(loaded))}"))
    sources = {s.name for s in recipe.data.sources}
    stage_names = [s.name for s in recipe.stages]
    resolved = ResolvedRecipe(recipe, file)
    previous_max = 0
    for i, stage in enumerate(recipe.stages):
        if stage.name in stage_names[:i]:
            issues.append(_issue(raw, file, ("stages", i, "name"), f"stage name {stage.name!r} is used twice"))
        context = resolved.component(registries, "context", stage.context)
        lengths = context.lengths()
        longest = max(lengths)
        if longest > recipe.model.max_position_embeddings:
            issues.append(_issue(raw, file, ("stages", i, "context"),
                                 f"sequence length {longest} exceeds model.max_position_embeddings "
                                 f"{recipe.model.max_position_embeddings}"))
        shrinks = any(b < a for a, b in zip(lengths, lengths[1:])) or lengths[0] < previous_max
        if shrinks and not stage.allow_context_shrink:
            issues.append(_issue(raw, file, ("stages", i, "context"),
                                 f"context shrinks (from {max(previous_max, lengths[0])} to {min(lengths)}); "
                                 f"set allow_context_shrink: true on stage {stage.name!r} if that is intended"))
        previous_max = longest
        for key in (stage.mixture if isinstance(stage.mixture, dict) else {}):
            if key not in sources:
                issues.append(_issue(raw, file, ("stages", i, "mixture", key),
                                     f"unknown data source {key!r}; sources: {', '.join(sorted(sources))}"))
        masking = resolved.component(registries, "masking", stage.masking)
        wanted = masking.segmenter_name() if masking.needs_words else None
        if masking.needs_words and registries.word_segmenter(recipe.metadata.language, wanted) is None:
            which = f"the word segmenter {wanted!r}" if wanted else "a word segmenter"
            issues.append(_issue(raw, file, ("stages", i, "masking", "name"),
                                 f"{stage.masking.name!r} needs {which} for language "
                                 f"{recipe.metadata.language!r} and no installed plugin provides one"))
    for loc, kind, ref in component_refs(recipe):  # what each component finds wrong with its use
        for where, message in resolved.component(registries, kind, ref).check(recipe):
            issues.append(_issue(raw, file, (*loc, *where), message))
    return issues


def _non_finite(data: Any, loc: tuple = ()) -> list[tuple[tuple, float]]:
    """Every infinite or NaN number in the recipe, with where it is.

    YAML spells them ``.inf`` and ``.nan`` (and ``1.0e+400`` overflows to
    inf); range checks such as ``gt=0`` let an infinity through, and no
    recipe value means anything as one.
    """
    if isinstance(data, float):
        return [] if math.isfinite(data) else [(loc, data)]
    if isinstance(data, dict):
        return [found for key, value in data.items() for found in _non_finite(value, (*loc, key))]
    if isinstance(data, (list, tuple)):
        return [found for i, value in enumerate(data) for found in _non_finite(value, (*loc, i))]
    return []


# --- error conversion ---------------------------------------------------------------


def _issue(raw: Any, file: str, loc: tuple, message: str) -> RecipeIssue:
    pos = locate(raw, loc) if isinstance(raw, (dict, list)) else None
    return RecipeIssue(pos[0] if pos else file, pos[1] if pos else None, pos[2] if pos else None,
                       field_path(loc), message)


def _issues_from_validation(exc: ValidationError, raw: Any, file: str, model: type[BaseModel],
                            prefix: tuple = (), what: str = "", also_known: tuple[str, ...] = ()) -> list[RecipeIssue]:
    """``also_known``: keys valid beside ``model``'s own at its top level (a component reference's schema fields)."""
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            known = sorted(_fields_at(model, loc[:-1]) + (list(also_known) if len(loc) == 1 else []))
            owner = f" for {what}" if what and len(loc) == 1 else ""
            message = f"unknown key {loc[-1]!r}{owner}{hint(str(loc[-1]), known)}; known: {', '.join(known)}"
        elif err["type"] == "missing":
            message = f"required key {loc[-1]!r} is missing"
        elif what:
            message = f"{what}: {message}"
        issues.append(_issue(raw, file, (*prefix, *loc), message))
    return issues


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model found by walking ``loc`` through the schema."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _model_in(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``list[M]``, ``dict[str, M]``, ``M | None``; else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


__all__ = ["ResolvedRecipe", "load_recipe", "validate_data", "find_recipe", "component_refs", "PosDict"]
