"""Reading recipe files: YAML with positions, ``extends:`` and ``key.path=value`` overrides.

Recipes are data. They are read with PyYAML's *safe* loader only (no tags that
build objects, no code, no import paths), and paths in them are never shell
expanded. Every mapping and list read from a file remembers where each of its
entries came from (file, line, column), and those positions travel through
``extends`` merges, so a validation error deep in a merged recipe still names
the file and line that holds the bad value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Pos = tuple[str, int, int]  # file, line (1-based), column (1-based)


@dataclass(frozen=True)
class RecipeIssue:
    """One problem with a recipe, located as precisely as the source allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class RecipeError(Exception):
    """A recipe could not be read or is invalid; carries every issue found."""

    def __init__(self, issues: Iterable[RecipeIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class PosDict(dict):
    """A dict that remembers where each key was written."""

    pos: dict[Any, Pos]
    origin: Pos | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pos = {}
        self.origin = None

    def __deepcopy__(self, memo: dict) -> PosDict:
        new = PosDict({k: copy.deepcopy(v, memo) for k, v in self.items()})
        new.pos, new.origin = dict(self.pos), self.origin
        return new


class PosList(list):
    """A list that remembers where each item was written."""

    pos: list[Pos | None]
    origin: Pos | None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pos = [None] * len(self)
        self.origin = None

    def __deepcopy__(self, memo: dict) -> PosList:
        new = PosList([copy.deepcopy(v, memo) for v in self])
        new.pos, new.origin = list(self.pos), self.origin
        return new


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}


def _mark(file: str, mark: yaml.Mark) -> Pos:
    return (file, mark.line + 1, mark.column + 1)


def _build(node: yaml.Node, loader: yaml.SafeLoader, file: str) -> Any:
    """Turn a composed node into plain data, keeping positions on mappings and lists."""
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        # SafeLoader refuses such tags on scalars; refuse them on collections too.
        raise RecipeError([RecipeIssue(file, node.start_mark.line + 1, node.start_mark.column + 1, "",
                                       f"YAML tag {node.tag!r} is not allowed: recipes are plain data")])
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
        out = PosDict()
        out.origin = _mark(file, node.start_mark)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise RecipeError([RecipeIssue(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                               str(key), "key appears twice in the same mapping")])
            out[key] = _build(value_node, loader, file)
            out.pos[key] = _mark(file, key_node.start_mark)
        return out
    if isinstance(node, yaml.SequenceNode):
        out_list = PosList([_build(item, loader, file) for item in node.value])
        out_list.pos = [_mark(file, item.start_mark) for item in node.value]
        out_list.origin = _mark(file, node.start_mark)
        return out_list
    return loader.construct_object(node, deep=True)


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text with the safe loader into position-carrying data."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RecipeError([RecipeIssue(file, 1, 1, "", "the file is empty")])
        return _build(node, loader, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if "\t" in problem or "'\\t'" in problem:
            problem += " (YAML does not allow tabs for indentation; use spaces)"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        raise RecipeError([RecipeIssue(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                                       "", f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise RecipeError([RecipeIssue(file, None, None, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path | str) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([RecipeIssue(str(path), None, None, "", "no such recipe file")]) from None
    except UnicodeDecodeError as exc:
        raise RecipeError([RecipeIssue(str(path), None, None, "", f"not UTF-8 text: {exc}")]) from None
    except OSError as exc:
        raise RecipeError([RecipeIssue(str(path), None, None, "", f"cannot read: {exc.strerror}")]) from None
    return load_yaml_text(text, str(path))


def read_recipe_name(path: Path) -> str:
    """The ``metadata.name`` of a recipe file (what the recipe registry keys it by)."""
    data = load_yaml_file(path)
    try:
        return str(data["metadata"]["name"])
    except (KeyError, TypeError):
        raise RecipeError([RecipeIssue(str(path), 1, 1, "metadata.name", "a registered recipe needs metadata.name")]) from None


# --- merging -------------------------------------------------------------------


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value)


def deep_merge(base: Any, over: Any) -> Any:
    """Merge ``over`` onto ``base``: mappings merge key by key; lists of named
    mappings (stages, sources, evaluators) merge item by item on ``name``,
    keeping the base's order and appending new names; anything else is replaced.
    Positions come from whichever side supplied the value.
    """
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base) if isinstance(base, PosDict) else PosDict(copy.deepcopy(base))
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
            if isinstance(over, PosDict) and key in over.pos:
                out.pos[key] = over.pos[key]
        return out
    if _named_items(base) and _named_items(over):
        result = PosList()
        result.origin = getattr(over, "origin", None)
        over_by_name = {item["name"]: (i, item) for i, item in enumerate(over)}
        used: set[str] = set()
        for i, item in enumerate(base):
            if item["name"] in over_by_name:
                j, other = over_by_name[item["name"]]
                result.append(deep_merge(item, other))
                result.pos.append(over.pos[j] if isinstance(over, PosList) else None)
                used.add(item["name"])
            else:
                result.append(copy.deepcopy(item))
                result.pos.append(base.pos[i] if isinstance(base, PosList) else None)
        for j, item in enumerate(over):
            if item["name"] not in used:
                result.append(copy.deepcopy(item))
                result.pos.append(over.pos[j] if isinstance(over, PosList) else None)
        return result
    return copy.deepcopy(over)


def resolve_extends(data: Any, file: str, find: Any, _chain: tuple[str, ...] = ()) -> Any:
    """Follow ``extends:`` to the root and merge downwards. ``find(ref, from_file)``
    returns the path of a parent given a registered name or a path.
    A cycle, or a parent that cannot be found, is a located error.
    """
    if not isinstance(data, dict) or not data.get("extends"):
        return data
    ref = data["extends"]
    where = data.pos.get("extends") if isinstance(data, PosDict) else None
    line, col = (where[1], where[2]) if where else (None, None)
    if not isinstance(ref, str):
        raise RecipeError([RecipeIssue(file, line, col, "extends", "must be a recipe name or a path")])
    parent_path = find(ref, file)
    if parent_path is None:
        raise RecipeError([RecipeIssue(file, line, col, "extends",
                                       f"no registered recipe or file named {ref!r}")])
    key = str(Path(parent_path).resolve())
    chain = (*_chain, str(Path(file).resolve()))
    if key in chain:
        names = " -> ".join([*chain, key])
        raise RecipeError([RecipeIssue(file, line, col, "extends", f"extends cycle: {names}")])
    parent = resolve_extends(load_yaml_file(parent_path), str(parent_path), find, chain)
    child = PosDict(data)
    child.pos, child.origin = dict(data.pos), data.origin
    del child["extends"]
    child.pos.pop("extends", None)
    if isinstance(parent, dict):
        parent = PosDict(parent) if not isinstance(parent, PosDict) else parent
        parent.pop("extends", None)
    return deep_merge(parent, child)


# --- overrides -------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``stages.stage1.lr=1e-4`` → (["stages", "stage1", "lr"], 1e-4); the value is YAML."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ValueError(f"override {text!r} has an empty key")
    return parts, yaml.safe_load(raw) if raw.strip() else None


def apply_override(data: dict, parts: list[str], value: Any, text: str) -> None:
    """Set an existing key. Lists are indexed by position or by an item's ``name``.
    A key that does not exist is an error naming the keys that do.
    """
    import difflib

    node: Any = data
    walked: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                names = [str(item.get("name")) for item in node if isinstance(item, dict) and "name" in item]
                known = f"0..{len(node) - 1}" + (f" or one of {names}" if names else "")
                raise ValueError(f"override {text!r}: no item {part!r} in {'.'.join(walked) or 'recipe'} (use {known})")
            if last:
                node[index] = value
                return
            node = node[index]
        elif isinstance(node, dict):
            if part not in node:
                close = difflib.get_close_matches(part, [str(k) for k in node], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"override {text!r}: no key {part!r} in {'.'.join(walked) or 'recipe'}{hint}; "
                    f"known: {', '.join(sorted(map(str, node)))}"
                )
            if last:
                node[part] = value
                return
            node = node[part]
        else:
            raise ValueError(f"override {text!r}: {'.'.join(walked)} is a value, not a mapping or list")
        walked.append(part)


def _list_index(items: list, part: str) -> int | None:
    if part.lstrip("-").isdigit():
        index = int(part)
        return index if -len(items) <= index < len(items) else None
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    return None


def locate(data: Any, loc: Iterable[Any]) -> Pos | None:
    """The most precise known position for a field path into position-carrying data."""
    best: Pos | None = getattr(data, "origin", None)
    node = data
    for part in loc:
        if isinstance(node, PosDict) and part in node:
            best = node.pos.get(part, best)
            node = node[part]
        elif isinstance(node, PosList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.pos[part] or best
            node = node[part]
        else:
            break
    return best
