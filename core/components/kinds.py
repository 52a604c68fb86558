"""The interface of each kind of component, and :data:`KINDS`, the one table of kinds.

A plugin's component subclasses one of these base classes, sets ``name`` and
``Params``, and implements the abstract method(s). The engine calls only
what the base class declares, with the arguments it declares.

:data:`KINDS` is the single list of component kinds. The registry (one typed
registry per kind, filled by the kind's register hook), the validator (where
a recipe holds a component of the kind), ``extends:`` merging (which keys hold
a component reference) and the docs are all derived from it. Adding a kind is
one entry there, its base class here and its register hook in
:mod:`encoder_recipes.hookspecs` (``tests/test_hookspecs.py`` checks the three agree).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from encoder_recipes.clock import Clock
from encoder_recipes.components.base import Component, Params

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast


class ScheduledParams(Params):
    scope: Literal["stage", "run"] = Field(
        "stage", description="stage: restart at every stage; run: one curve over all stages"
    )


class LRSchedule(Component):
    """Learning-rate multiplier (peak LR × multiplier) as a pure function of the clock."""

    kind: ClassVar[str] = "lr_schedule"
    Params: ClassVar[type[Params]] = ScheduledParams

    @abstractmethod
    def multiplier(self, clock: Clock) -> float:
        """The multiplier on the stage's peak LR at this step (a pure function of the clock)."""


class ContextSchedule(Component):
    """A stage's sequence length at each step."""

    kind: ClassVar[str] = "context"

    @abstractmethod
    def seq_len(self, clock: Clock) -> int:
        """The sequence length at this step, ``[CLS]`` and ``[SEP]`` included (a pure function of the clock)."""

    @abstractmethod
    def lengths(self) -> list[int]:
        """Every sequence length this schedule uses, in order (validation and the plan read them)."""


class Masking(Component):
    """Chooses MLM targets and corrupts inputs; the rate may follow a schedule."""

    kind: ClassVar[str] = "masking"
    #: True when the strategy needs word ids per token (whole-word masking).
    needs_words: ClassVar[bool] = False

    @abstractmethod
    def rate(self, clock: Clock) -> float:
        """The masking rate at this step."""

    @abstractmethod
    def mask(
        self,
        input_ids: torch.Tensor,
        *,
        rate: float,
        special_tokens_mask: torch.Tensor,
        mask_token_id: int,
        vocab_size: int,
        generator: torch.Generator,
        word_ids: torch.Tensor | None = None,
        special_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(inputs, labels)``; labels are -100 where no prediction is made.

        The engine passes every argument, by keyword, on every batch:

        :param input_ids: token ids, ``(batch, length)``; padding and specials included.
        :param rate: the masking rate at this step (from :meth:`rate`).
        :param special_tokens_mask: True where ``input_ids`` holds a special token (never a target).
        :param mask_token_id: the id of ``[MASK]``.
        :param vocab_size: the tokenizer's vocabulary size (random replacements come from ``range(vocab_size)``).
        :param generator: the step-seeded random generator; draw only from it, so a resumed run masks alike.
        :param word_ids: a word index per token (-1: none) when :attr:`needs_words` is True, else None.
        :param special_ids: the ids of every special token, so random replacements can avoid them.
        """

    def segmenter_name(self) -> str | None:
        """The particular word segmenter this masking asks the language's plugin for (None: its default).

        Read only when :attr:`needs_words` is True.
        """
        return None


class Tokenizer(Component):
    """Builds (trains) or loads the recipe's tokenizer."""

    kind: ClassVar[str] = "tokenizer"

    @abstractmethod
    def build(self, *, texts: Any, vocab_size: int | None, language: str, segmenter: Any) -> PreTrainedTokenizerFast:
        """Return a ready tokenizer with the ModernBERT special tokens.

        :param texts: an iterable of training texts (None when the tokenizer is loaded).
        :param vocab_size: target vocabulary (None: the component's own).
        :param language: the recipe's language.
        :param segmenter: the language's word segmenter, or None.

        ``texts`` may be every training document of a full-scale run: stop
        reading when you have enough (the built-ins' ``max_train_documents``).
        """

    def planned_vocab_size(self) -> int | None:
        """The vocabulary size :meth:`build` will give, when known beforehand (the plan counts
        parameters with it); None when only building tells."""
        return None

    def learns_from_texts(self) -> bool:
        """Whether :meth:`build` learns its vocabulary from ``texts`` (True) or loads a fixed one.

        A recipe whose tokenizer learns suits any language, so ``new-plugin``
        may start a new language from it; one that loads another language's
        vocabulary cannot be swapped out by ``extends``. The default, False,
        is the safe answer for a tokenizer that does not say.
        """
        return False


class Evaluator(Component):
    """Scores a masked-LM model and returns named metrics."""

    kind: ClassVar[str] = "evaluator"
    #: True when :meth:`evaluate` scores only this rank's share of its examples
    #: (``context.shard(n)``) and sums across ranks with ``context.all_sum``, so in a
    #: multi-process run every rank runs it and the main rank's result is kept. False
    #: (the default): the main rank alone runs it while the others wait.
    shardable: ClassVar[bool] = False

    @abstractmethod
    def evaluate(self, *, model: Any, tokenizer: Any, context: Any) -> dict[str, Any]:
        """Named metrics of ``model`` (numbers and strings go to the logs; anything else only to ``eval/``).

        :param model: a transformers masked-LM model, in eval mode, on ``context.device``.
        :param tokenizer: the run's tokenizer.
        :param context: an :class:`~encoder_recipes.evaluation.context.EvalContext`; with
            :attr:`shardable`, its ``shard`` and ``all_sum`` divide the work among the ranks.
        """


class Optimizer(Component):
    """Builds the torch optimizer that updates the model's weights."""

    kind: ClassVar[str] = "optimizer"

    @abstractmethod
    def build(self, model: torch.nn.Module, *, lr: float) -> torch.optim.Optimizer:
        """Return an optimizer over ``model``'s trainable parameters.

        :param model: the model, on its training device, before DDP or ``torch.compile`` wrap it.
        :param lr: the first stage's peak learning rate, the LR the optimizer is built with. The
            engine sets every param group's ``lr`` before each step (stage peak × schedule), so
            only what the optimizer keeps from it (StableAdamW's ``max_lr``) lasts.

        Norm weights and biases take no weight decay:
        :func:`~encoder_recipes.components.param_groups.weight_decay_groups` makes the groups by
        parameter role. The groups must depend on the model alone, so that a checkpoint's
        optimizer state loads back onto the same parameters.
        """


class Mixture(Component):
    """Which data source supplies each next document: a probability per source at each step."""

    kind: ClassVar[str] = "mixture"

    @abstractmethod
    def probabilities(self, clock: Clock, *, sources: Sequence[str],
                      sizes: Mapping[str, float] | None) -> dict[str, float]:
        """Each source's probability of supplying a document read at this step (a pure function of
        the clock and the sizes). The engine draws every document of the step from them.

        :param sources: the recipe's data source names.
        :param sizes: each source's size (``data.sources[].size``, else its count of training
            documents) when :meth:`needs_sizes` is True, else None.

        Return a probability for every source (0: not drawn); they must sum to 1.
        """

    def needs_sizes(self) -> bool:
        """Whether :meth:`probabilities` reads the sources' sizes; the engine counts a source's
        documents for it only then. The default says no."""
        return False

    def fixed_weights(self) -> dict[str, float] | None:
        """The weights per source when they are the same at every step (a prepared store plans
        with these; empty: every source equally), else None. The default says they are not."""
        return None

    def describe(self, clock: Clock) -> dict[str, float]:
        """Numbers written to each ``metrics.jsonl`` line as ``mixture/<key>`` (the temperature's
        ``tau``); the default none. The engine logs the probabilities and the shares itself."""
        return {}


# --- the table of kinds ---------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of component and everything the host derives from it."""

    #: the kind's name, as the registry, ``encoder-recipes components KIND`` and errors spell it
    name: str
    #: the hookspec through which plugins register components of this kind
    hook: str
    #: the base class every component of this kind subclasses
    base: type[Component]
    #: where a recipe holds a reference to a component of this kind, as field paths into the
    #: schema; ``"*"`` stands for every item of a list
    slots: tuple[tuple[str, ...], ...]
    #: one line for the docs and ``encoder-recipes components``
    description: str

    def __post_init__(self) -> None:
        if self.base.kind != self.name:
            raise ValueError(f"kind {self.name!r}: its base class {self.base.__name__} says kind {self.base.kind!r}")


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("tokenizer", "encoder_recipes_register_tokenizers", Tokenizer, (("tokenizer",),),
         "builds or loads the recipe's tokenizer (a PreTrainedTokenizerFast)"),
    Kind("masking", "encoder_recipes_register_maskings", Masking, (("stages", "*", "masking"),),
         "chooses MLM targets in a batch of token ids and corrupts the inputs"),
    Kind("context", "encoder_recipes_register_context_schedules", ContextSchedule, (("stages", "*", "context"),),
         "gives a stage's sequence length at each step of the stage"),
    Kind("lr_schedule", "encoder_recipes_register_lr_schedules", LRSchedule, (("stages", "*", "lr_schedule"),),
         "gives the learning-rate multiplier at each step (a pure function of the clock)"),
    Kind("evaluator", "encoder_recipes_register_evaluators", Evaluator, (("evaluators", "*"),),
         "scores a masked-LM checkpoint and returns named metrics"),
    Kind("optimizer", "encoder_recipes_register_optimizers", Optimizer, (("optimizer",),),
         "builds the torch optimizer, with weight-decay groups by parameter role"),
    Kind("mixture", "encoder_recipes_register_mixtures", Mixture, (("data", "mixture"), ("stages", "*", "mixture")),
         "gives each data source's probability of supplying the next document at each step"),
)}


def component_keys() -> set[str]:
    """Keys whose value is a component reference (``{name: ..., <params>}``), e.g. ``masking``."""
    return {slot[-1] for kind in KINDS.values() for slot in kind.slots if slot[-1] != "*"}
