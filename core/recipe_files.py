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

from encoder_recipes.components.kinds import component_keys
from encoder_recipes.names import field_path, hint

Pos = tuple[str, int, int]  # file, line (1-based), column (1-based)

#: Values a recipe may expand to. Real recipes hold a few hundred; YAML aliases
#: nested inside aliases ("billion laughs") would otherwise expand without bound.
MAX_VALUES = 100_000
#: Nesting depth at which a recipe is refused (real ones are about six deep).
MAX_DEPTH = 64


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


def _field(loc: tuple) -> str:
    return field_path(loc, limit=80)


class _Builder:
    """Turns a composed node into plain data, keeping positions on mappings and lists.

    It also refuses what a hostile file could do to the process: a tag that
    would build an object (SafeLoader refuses those on scalars; here on
    collections too), nesting deeper than :data:`MAX_DEPTH`, and aliases that
    expand past :data:`MAX_VALUES` values ("billion laughs"). Each refusal
    names the line and the field path where it happened.
    """

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader, self.file, self.left = loader, file, MAX_VALUES

    def refuse(self, node: yaml.Node, loc: tuple, message: str) -> RecipeError:
        return RecipeError([RecipeIssue(self.file, node.start_mark.line + 1, node.start_mark.column + 1,
                                        _field(loc), message)])

    def build(self, node: yaml.Node, loc: tuple = ()) -> Any:
        self.left -= 1
        if self.left < 0:
            raise self.refuse(node, loc, f"the recipe expands to more than {MAX_VALUES} values "
                                         "(YAML aliases nested inside aliases?)")
        if len(loc) > MAX_DEPTH:
            raise self.refuse(node, loc, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            raise self.refuse(node, loc, f"YAML tag {node.tag!r} is not allowed: recipes are plain data")
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
            out = PosDict()
            out.origin = _mark(self.file, node.start_mark)
            for key_node, value_node in node.value:
                key = self.scalar(key_node, (*loc, "?"))
                if key in out:
                    raise self.refuse(key_node, (*loc, key), "key appears twice in the same mapping")
                out[key] = self.build(value_node, (*loc, key))
                out.pos[key] = _mark(self.file, key_node.start_mark)
            return out
        if isinstance(node, yaml.SequenceNode):
            out_list = PosList([self.build(item, (*loc, i)) for i, item in enumerate(node.value)])
            out_list.pos = [_mark(self.file, item.start_mark) for item in node.value]
            out_list.origin = _mark(self.file, node.start_mark)
            return out_list
        return self.scalar(node, loc)

    def scalar(self, node: yaml.Node, loc: tuple) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:  # e.g. !!python/name: on a scalar
            raise self.refuse(node, loc, f"YAML error: {exc.problem} (recipes are plain data: no Python tags)") \
                from None


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text with the safe loader into position-carrying data."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters already here
        node = loader.get_single_node()
        if node is None:
            raise RecipeError([RecipeIssue(file, 1, 1, "", "the file is empty")])
        return _Builder(loader, file).build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if "\t" in problem or "'\\t'" in problem:
            problem += " (YAML does not allow tabs for indentation; use spaces)"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        raise RecipeError([RecipeIssue(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                                       _walk_events(text)[0], f"YAML syntax error: {problem}")]) from None
    except yaml.reader.ReaderError as exc:  # a control character: located by its offset in the text
        line, column = _line_column(text, exc.position)
        readable = text[:exc.position] + " " + text[exc.position + 1:]
        raise RecipeError([RecipeIssue(file, line, column, _walk_events(readable, stop_offset=exc.position)[0],
                                       f"YAML error: the control character U+{exc.character:04X} is not allowed in YAML text")]) from None
    except yaml.YAMLError as exc:
        raise RecipeError([RecipeIssue(file, None, None, "", f"YAML error: {exc}")]) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        path, line, column = _walk_events(text, stop_depth=MAX_DEPTH)
        raise RecipeError([RecipeIssue(file, line, column, path,
                                       f"nested more than {MAX_DEPTH} levels deep")]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _walk_events(text: str, *, stop_depth: int | None = None,
                 stop_offset: int | None = None) -> tuple[str, int | None, int | None]:
    """Where the parser got to: (field path, line, column) of the last event it produced.

    Used only to explain a failure. PyYAML's event parser is not recursive
    and yields events up to the error, so this works on text that does not
    parse: for a syntax error it names the field being read (``stages[0].lr``).
    ``stop_depth`` stops at the first collection nested that deep,
    ``stop_offset`` at the value holding that character offset.
    """
    stack: list[list[Any]] = []  # per open collection: [is_mapping, current key or index, expecting a key]
    line = column = None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
                line, column = event.start_mark.line + 1, event.start_mark.column + 1
                last = stop_offset is not None and event.end_mark.index > stop_offset
                whole = not isinstance(event, yaml.CollectionStartEvent)  # a collection ends later
                if stack:
                    frame = stack[-1]
                    if not frame[0]:
                        frame[1] += 1
                    elif frame[2]:  # a key
                        frame[1] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
                        frame[2] = not whole
                    elif whole and not last:  # a value: the mapping expects its next key
                        frame[2] = True
                if last:
                    break
                if not whole:
                    is_mapping = isinstance(event, yaml.MappingStartEvent)
                    stack.append([is_mapping, None if is_mapping else -1, True])
                    if stop_depth is not None and len(stack) > stop_depth:
                        break
            elif isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
                if stack and stack[-1][0]:
                    stack[-1][2] = not stack[-1][2]  # the collection was a value (or a complex key)
    except yaml.YAMLError:
        pass
    loc = tuple(key for is_mapping, key, expecting_key in stack
                if (is_mapping and key is not None and not expecting_key) or (not is_mapping and key >= 0))
    return _field(loc), line, column


def load_yaml_file(path: Path | str) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([RecipeIssue(str(path), None, None, "", "no such recipe file")]) from None
    except UnicodeDecodeError as exc:
        data = exc.object
        before = data[:exc.start].decode("utf-8", errors="replace")
        readable = before + data[exc.start:].decode("utf-8", errors="replace")
        line, column = _line_column(before, len(before))
        raise RecipeError([RecipeIssue(str(path), line, column, _walk_events(readable, stop_offset=len(before))[0],
                                       f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded "
                                       "(save the file as UTF-8)")]) from None
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


#: keys whose value is a component reference: a child naming another component replaces it whole
COMPONENT_KEYS = component_keys()


def _other_component(key: Any, base: Any, over: Any) -> bool:
    return (key in COMPONENT_KEYS and isinstance(base, dict) and isinstance(over, dict)
            and "name" in over and over["name"] != base.get("name"))


def deep_merge(base: Any, over: Any) -> Any:
    """Merge ``over`` onto ``base``: mappings merge key by key; lists of named
    mappings (stages, sources, evaluators) merge item by item on ``name``,
    keeping the base's order and appending new names; anything else is replaced.
    A component reference that names a different component replaces the
    parent's whole (its params belong to the old component).
    Positions come from whichever side supplied the value.
    """
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base) if isinstance(base, PosDict) else PosDict(copy.deepcopy(base))
        for key, value in over.items():
            if key in base and not _other_component(key, base[key], value):
                out[key] = deep_merge(base[key], value)
            else:
                out[key] = copy.deepcopy(value)
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


def resolve_extends(data: Any, file: str, find: Any, _chain: tuple[str, ...] = (), *,
                    known: Iterable[str] = ()) -> Any:
    """Follow ``extends:`` to the root and merge downwards. ``find(ref, from_file)``
    returns the path of a parent given a registered name or a path; ``known``
    are the registered names, for a suggestion when a parent cannot be found.
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
        known = list(known)
        raise RecipeError([RecipeIssue(file, line, col, "extends",
                                       f"no registered recipe or file named {ref!r}{hint(ref, known)}; "
                                       f"registered: {', '.join(sorted(known)) or 'none'}")])
    key = str(Path(parent_path).resolve())
    chain = (*_chain, str(Path(file).resolve()))
    if key in chain:
        names = " -> ".join([*chain, key])
        raise RecipeError([RecipeIssue(file, line, col, "extends", f"extends cycle: {names}")])
    parent = resolve_extends(load_yaml_file(parent_path), str(parent_path), find, chain, known=known)
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
    if not raw.strip():
        return parts, None
    try:
        return parts, yaml.safe_load(raw)
    except yaml.YAMLError as exc:  # a Python tag, or text that is not YAML: the same refusal as in a file
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"override {text!r}: the value is not plain YAML data ({problem})") from None


def apply_override(data: dict, parts: list[str], value: Any, text: str) -> None:
    """Set an existing key. Lists are indexed by position or by an item's ``name``.
    A key that does not exist is an error naming the keys that do.
    """
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
                raise ValueError(
                    f"override {text!r}: no key {part!r} in {'.'.join(walked) or 'recipe'}{hint(part, node)}; "
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
