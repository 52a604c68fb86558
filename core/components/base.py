"""What every component is: a class with a ``name``, a ``kind`` and a pydantic ``Params``.

A recipe selects a component as ``{name: ..., <params>}``; the host looks the
name up in the registry for that kind and validates the rest against
``Params``. Params models forbid unknown keys, and their field defaults are the
only defaults a component has (code never supplies a second one).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from encoder_recipes.schema import Recipe

class Params(BaseModel):
    """Base of every component's parameters: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Scaling:
    """What a named scale (``--scale smoke``) asks of a component; see :meth:`Component.scaled`."""

    #: a full-scale sequence length -> the scale's
    length: Callable[[int], int]
    #: a full-scale number of steps -> the scale's, within a span: ``"stage"`` (the stage holding
    #: the component) or ``"run"`` (all stages)
    steps: Callable[[int, Literal["stage", "run"]], int]
    #: the vocabulary a tokenizer trains at this scale
    vocab_size: int
    #: a full-scale number of tokens -> the scale's, within a span (as ``steps``): times the ratio of
    #: the span's tokens at this scale to its tokens at full scale
    tokens: Callable[[float, Literal["stage", "run"]], float]
    #: a full-scale LR warmup in steps -> the scale's: as ``steps``, but at least the scale's minimum
    #: warmup (``ScaleRule.min_warmup_steps``, at most a tenth of the span's steps); an optimizer's
    #: first steps need a warmup of some absolute length, not of the same fraction of a short run
    warmup_steps: Callable[[int, Literal["stage", "run"]], int] | None = None
    #: a full-scale LR warmup in tokens -> the scale's: as ``tokens``, but at least the tokens of the
    #: span's first minimum-warmup steps (see ``warmup_steps``)
    warmup_tokens: Callable[[float, Literal["stage", "run"]], float] | None = None


#: a problem a component finds with the recipe using it: (field path under the component's
#: reference, e.g. ``("decay_start_stage",)``, or ``()`` for the reference itself; message)
Problem = tuple[tuple[str | int, ...], str]


class Component(ABC):
    """Base class of all components. Subclasses set ``kind``, ``name`` and ``Params``."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a Params instance or keyword params, not both")
        self.params = params if params is not None else self.Params(**kwargs)

    def scaled(self, scaling: Scaling) -> dict[str, Any]:
        """This component's reference at a smaller scale: ``{"name": ..., <params>}``.

        The default keeps the component and its params as they are. A component
        whose params hold sizes (sequence lengths, step counts, a vocabulary)
        shrinks them with ``scaling``; one that cannot run offline may name
        another component to stand in for it.
        """
        return {"name": self.name, **self.params.model_dump(mode="python")}

    def check(self, recipe: Recipe) -> list[Problem]:
        """Problems with how ``recipe`` uses this component, beyond what ``Params`` validates alone.

        Called once the whole recipe is valid against the schema, so a
        component can check its params against the rest (e.g. a stage it
        names exists). The default finds none.
        """
        return []

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring: the one-line description the CLI shows."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
