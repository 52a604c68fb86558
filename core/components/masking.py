"""Built-in masking strategies: token-level MLM and whole-word MLM.

Both follow transformers' ``DataCollatorForLanguageModeling``: positions are
selected with probability ``rate``; of those, ``mask_replace_prob`` become
``[MASK]``, ``random_replace_prob`` become a random token and the rest keep
their token; labels hold the original id at selected positions and -100
elsewhere. Two differences from transformers, both deliberate:

* random replacements are never special tokens (transformers draws from the
  whole vocabulary); pass their ids as ``special_ids``;
* whole-word masking takes word ids from a real word segmenter (fugashi for
  Japanese, jieba for Chinese) instead of guessing words from gaps between
  token offsets, which makes an unspaced sentence one "word".

The rate may follow a piecewise-linear schedule over the stage or the run
(e.g. 30% → 15%), a pure function of the clock like every schedule.

Everything is vectorised torch: the data pipeline must keep up with training
(about 175k tokens/s on two cores), so there is no Python loop over tokens.
"""

from __future__ import annotations

import bisect
import functools
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from encoder_recipes.clock import Clock
from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Masking

if TYPE_CHECKING:
    # torch is imported where it is used: loading the built-in plugin (every
    # CLI command) must not pay for it.
    import torch

__all__ = ["MaskingParams", "TokenMasking", "WholeWordMasking", "word_ids_from_offsets"]

IGNORE_INDEX = -100  #: label of positions that are not predicted (PyTorch's cross-entropy default)


class MaskingParams(Params):
    """Params shared by the built-in masking strategies."""

    rate: float = Field(0.3, gt=0, lt=1, description="fraction of tokens selected as MLM targets")
    schedule: list[tuple[float, float]] | None = Field(
        None,
        description="piecewise-linear (progress, rate) points, progress in [0, 1] strictly increasing; "
        "flat outside the points; overrides rate when given",
    )
    scope: Literal["stage", "run"] = Field("stage", description="progress of the schedule: over the stage or the run")
    mask_replace_prob: float = Field(0.8, ge=0, le=1, description="of selected tokens, the share replaced by [MASK]")
    random_replace_prob: float = Field(
        0.1, ge=0, le=1, description="of selected tokens, the share replaced by a random non-special token"
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, points: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if points is None:
            return None
        if not points:
            raise ValueError("schedule needs at least one (progress, rate) point; omit it for a constant rate")
        for progress, rate in points:
            if not 0.0 <= progress <= 1.0:
                raise ValueError(f"schedule progress must be in [0, 1], got {progress}")
            if not 0.0 < rate < 1.0:
                raise ValueError(f"schedule rate must be in (0, 1), got {rate}")
        xs = [p for p, _ in points]
        if any(a >= b for a, b in zip(xs, xs[1:])):
            raise ValueError(f"schedule progress points must be strictly increasing, got {xs}")
        return points

    @model_validator(mode="after")
    def _split_fits(self) -> MaskingParams:
        total = self.mask_replace_prob + self.random_replace_prob
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob must be <= 1, got {self.mask_replace_prob} + "
                f"{self.random_replace_prob} = {total}"
            )
        return self


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"masking rate must be in [0, 1], got {rate}")


def _replacement_pool(vocab_size: int, special_ids: torch.Tensor | None) -> torch.Tensor:
    """Token ids a random replacement may take: the vocabulary minus special tokens."""
    specials = tuple(sorted(special_ids.tolist())) if special_ids is not None else ()
    return _pool(vocab_size, specials)


@functools.lru_cache(maxsize=16)
def _pool(vocab_size: int, specials: tuple[int, ...]) -> torch.Tensor:
    # cached: the store reader masks row by row, and building the pool costs more than masking a row
    import torch

    pool = torch.arange(vocab_size, dtype=torch.long)
    if specials:
        pool = pool[~torch.isin(pool, torch.tensor(specials, dtype=torch.long))]
    if pool.numel() == 0:
        raise ValueError("no token is left to draw random replacements from")
    return pool


def _corrupt(
    input_ids: torch.Tensor,
    selected: torch.Tensor,
    treatment: torch.Tensor,
    *,
    params: MaskingParams,
    mask_token_id: int,
    vocab_size: int,
    special_ids: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the mask / random / keep split to ``selected`` positions.

    ``treatment`` is a uniform [0, 1) draw per position: below
    ``mask_replace_prob`` → [MASK], then ``random_replace_prob`` → random
    token, otherwise keep. One draw (rather than transformers' two nested
    Bernoullis) gives the same probabilities and lets whole-word masking
    share one draw across a word.
    """
    import torch

    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    inputs = input_ids.clone()
    p_mask = params.mask_replace_prob
    to_mask = selected & (treatment < p_mask)
    to_random = selected & (treatment >= p_mask) & (treatment < p_mask + params.random_replace_prob)
    inputs[to_mask] = mask_token_id
    n_random = int(to_random.sum())
    if n_random:
        pool = _replacement_pool(vocab_size, special_ids)
        picks = torch.randint(len(pool), (n_random,), generator=generator, device=pool.device)
        inputs[to_random] = pool[picks].to(inputs.device)
    return inputs, labels


def _maskable(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, special_ids: torch.Tensor | None) -> torch.Tensor:
    """Positions that may be selected: not special, not padding (the caller marks both)."""
    import torch

    maskable = ~special_tokens_mask.bool()
    if special_ids is not None and special_ids.numel():
        # Belt and braces: a special id is never a target even if the mask missed it.
        maskable &= ~torch.isin(input_ids, special_ids.to(input_ids.device))
    return maskable


class _ScheduledRate(Masking):
    """The rate (or rate schedule) logic the built-in strategies share."""

    Params: ClassVar[type[MaskingParams]] = MaskingParams

    def rate(self, clock: Clock) -> float:
        schedule = self.params.schedule
        return float(self.params.rate) if schedule is None else clock.along(schedule, self.params.scope)


class TokenMasking(_ScheduledRate):
    """Token-level MLM: each non-special token is a target with probability rate (80/10/10 split).

    ``special_tokens_mask`` must be true at special tokens *and* padding.
    """

    name: ClassVar[str] = "mlm"

    class Params(MaskingParams):
        pass

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
        import torch

        _check_rate(rate)
        maskable = _maskable(input_ids, special_tokens_mask, special_ids)
        draws = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
        selected = (draws < rate) & maskable
        treatment = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
        return _corrupt(
            input_ids, selected, treatment, params=self.params, mask_token_id=mask_token_id,
            vocab_size=vocab_size, special_ids=special_ids, generator=generator,
        )


class WholeWordMasking(_ScheduledRate):
    """Whole-word MLM: each word is a target with probability rate, all its tokens together.

    ``word_ids`` gives a word index per token (-1 for special and padding
    tokens), unique within each row; build it with :func:`word_ids_from_offsets`
    from a real segmenter's word spans. Choices:

    * each word is selected with probability ``rate``, so the expected share
      of selected *tokens* is ``rate`` too (every token's word is selected
      with that probability, whatever the word's length);
    * the 80/10/10 split is drawn once per word, so all tokens of a word get
      the same treatment ([MASK], random or kept); a randomised word gets an
      independent random token at each of its positions.
    """

    name: ClassVar[str] = "whole_word"
    needs_words: ClassVar[bool] = True

    class Params(MaskingParams):
        segmenter: str | None = Field(
            None, description="a particular word segmenter of the language's plugin (e.g. rjieba); None: its default"
        )

    def segmenter_name(self) -> str | None:
        return self.params.segmenter

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
        import torch

        _check_rate(rate)
        if word_ids is None:
            raise ValueError("whole_word masking needs word_ids (a word index per token, -1 for none)")
        if word_ids.shape != input_ids.shape:
            raise ValueError(f"word_ids shape {tuple(word_ids.shape)} differs from input_ids {tuple(input_ids.shape)}")
        word_ids = word_ids.to(device=input_ids.device, dtype=torch.long)
        rows = input_ids.shape[0] if input_ids.dim() > 1 else 1
        flat_words = word_ids.reshape(rows, -1)
        n_words = int(flat_words.max()) + 1 if flat_words.numel() else 0
        # One draw per (row, word) for selection and one for the treatment,
        # gathered back onto the tokens: every token of a word shares both.
        shape = (rows, max(n_words, 1))
        word_draws = torch.rand(shape, generator=generator, device=input_ids.device)
        word_treatment = torch.rand(shape, generator=generator, device=input_ids.device)
        index = flat_words.clamp(min=0)
        selected = torch.gather(word_draws < rate, 1, index).reshape(input_ids.shape)
        treatment = torch.gather(word_treatment, 1, index).reshape(input_ids.shape)
        selected &= (word_ids >= 0) & _maskable(input_ids, special_tokens_mask, special_ids)
        return _corrupt(
            input_ids, selected, treatment, params=self.params, mask_token_id=mask_token_id,
            vocab_size=vocab_size, special_ids=special_ids, generator=generator,
        )


def word_ids_from_offsets(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Word index of every token, from token character offsets and word character spans.

    A token belongs to the word whose span contains the token's first
    character. A token starting outside every word (e.g. a ``▁`` standing for
    the space before a word) belongs to the first word that starts inside the
    token or right at its end, so it is masked together with that word. Empty
    offsets (special tokens, ``(0, 0)``) and tokens touching no word get -1.

    :param offsets: ``(start, end)`` per token, as a fast tokenizer's
        ``return_offsets_mapping`` gives them.
    :param spans: ``(start, end)`` per word, in order and non-overlapping, as
        :meth:`~encoder_recipes.components.segmenters.WordSegmenter.spans` gives them.
    """
    starts = [a for a, _ in spans]
    out: list[int] = []
    for start, end in offsets:
        if end <= start:
            out.append(-1)
            continue
        i = bisect.bisect_right(starts, start) - 1
        if i >= 0 and start < spans[i][1]:
            out.append(i)
        elif i + 1 < len(spans) and spans[i + 1][0] <= end:
            out.append(i + 1)
        else:
            out.append(-1)
    return out
