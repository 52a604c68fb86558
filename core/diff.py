"""Key-path diff of two resolved recipes.

Lists of named mappings (stages, data sources, evaluators) are aligned by
``name`` when the two sides share names, else by position, so a diff of
``ja-llmjp`` against ``ja-modernbert-ja`` reads ``stages.stage1.lr`` rather
than ``stages[0].lr``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class Difference:
    path: str
    left: Any
    right: Any

    @property
    def differs(self) -> bool:
        return self.left != self.right


def flatten(value: Any, prefix: str = "", align_with: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            other = align_with.get(key) if isinstance(align_with, dict) else None
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key), other))
    elif isinstance(value, list) and value and _by_name(value, align_with):
        for item in value:
            out.update(flatten(item, f"{prefix}.{item['name']}", None))
    elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]", None))
    else:
        out[prefix] = value
    return out


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(v, dict) and "name" in v for v in items)


def _by_name(items: list, other: Any) -> bool:
    if not _named(items):
        return False
    if other is None or not _named(other):
        return True
    return bool({v["name"] for v in items} & {v["name"] for v in other})


def diff_dicts(left: dict, right: dict, *, include_equal: bool = False) -> list[Difference]:
    flat_left, flat_right = flatten(left, align_with=right), flatten(right, align_with=left)
    keys = list(flat_left) + [k for k in flat_right if k not in flat_left]
    rows = [Difference(k, flat_left.get(k, _MISSING), flat_right.get(k, _MISSING)) for k in keys]
    return [r for r in rows if include_equal or r.differs]


def show_value(value: Any) -> str:
    if value is _MISSING:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_text(rows: list[Difference], left_name: str, right_name: str) -> str:
    if not rows:
        return "recipes are identical"
    width = max(len(r.path) for r in rows)
    lw = max(len(left_name), *(len(show_value(r.left)) for r in rows))
    lines = [f"{'key':<{width}}  {left_name:<{lw}}  {right_name}"]
    for r in rows:
        lines.append(f"{r.path:<{width}}  {show_value(r.left):<{lw}}  {show_value(r.right)}")
    return "\n".join(lines)


def render_markdown(rows: list[Difference], left_name: str, right_name: str) -> str:
    lines = [f"| key | {left_name} | {right_name} |", "| --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r.path}` | {show_value(r.left)} | {show_value(r.right)} |")
    return "\n".join(lines)


def render_json(rows: list[Difference]) -> str:
    return json.dumps(
        [{"key": r.path, "left": None if r.left is _MISSING else r.left,
          "right": None if r.right is _MISSING else r.right,
          "missing": "left" if r.left is _MISSING else "right" if r.right is _MISSING else None}
         for r in rows],
        ensure_ascii=False, indent=2,
    )
