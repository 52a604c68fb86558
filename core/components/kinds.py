"""The interface of each kind of component: what the training engine calls.

A plugin's component subclasses one of these, sets ``name`` and ``Params``,
and implements the abstract method(s). The hookspecs register them; the
registry refuses a class whose ``kind`` does not match the hook.
"""

from __future__ import annotations

from abc import abstractmethod
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
    def multiplier(self, clock: Clock) -> float: ...


class ContextSchedule(Component):
    """A stage's sequence length at each step."""

    kind: ClassVar[str] = "context"

    @abstractmethod
    def seq_len(self, clock: Clock) -> int: ...

    @abstractmethod
    def lengths(self) -> list[int]:
        """Every sequence length this schedule uses, in order."""

    def max_seq_len(self) -> int:
        return max(self.lengths())


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
        """


class Evaluator(Component):
    """Scores a masked-LM model and returns named metrics."""

    kind: ClassVar[str] = "evaluator"

    @abstractmethod
    def evaluate(self, *, model: Any, tokenizer: Any, context: Any) -> dict[str, Any]: ...
