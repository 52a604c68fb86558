"""What every component is: a class with a ``name``, a ``kind`` and a pydantic ``Params``.

A recipe selects a component as ``{name: ..., <params>}``; the host looks the
name up in the registry for that kind and validates the rest against
``Params``. Params models forbid unknown keys, and their field defaults are the
only defaults a component has (code never supplies a second one).
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

class Params(BaseModel):
    """Base of every component's parameters: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(ABC):
    """Base class of all components. Subclasses set ``kind``, ``name`` and ``Params``."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a Params instance or keyword params, not both")
        self.params = params if params is not None else self.Params(**kwargs)

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring: the one-line description the CLI shows."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
