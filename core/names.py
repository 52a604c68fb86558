"""Names as people type them: a suggestion for a misspelt one, recipe names spelt with ``_`` or ``-``,
and field paths as errors print them."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (difflib's ratio of at least 0.6), or None."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return close[0] if close else None


def normalise(name: str) -> str:
    """A recipe name as packaging normalises a distribution name (PEP 503): ``ja_llmjp`` → ``ja-llmjp``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def hint(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` when a known name is close to ``name``, else ``""``."""
    return suggestion_hint(did_you_mean(name, known))


def suggestion_hint(suggestion: str | None) -> str:
    """``" (did you mean 'x'?)"`` for a suggestion already found, ``""`` for None: the one wording."""
    return f" (did you mean {suggestion!r}?)" if suggestion else ""


def field_path(loc: Iterable[str | int], *, limit: int | None = None) -> str:
    """``("stages", 0, "lr")`` → ``stages[0].lr``, the form every recipe error uses.

    :param limit: longest path printed; a longer one (pathological nesting) keeps its start, which says where.
    """
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if limit is not None and len(out) > limit:
        return out[: limit - 3] + "..."
    return out
