"""What a training run calls to read its stages from a prepared store (one function per moment).

* :func:`open_for_run` at set-up, before anything in the run directory
  changes: open the store (every shard present and whole), refuse it if it was
  made with another tokenizer, from other data, or without the word starts the
  recipe's masking needs.
* :func:`save_tokenizer`: a new run trains with the store's tokenizer (the
  ids come from it) and keeps a copy in its run directory, as an on-the-fly
  run keeps the one it trained.
* :func:`check_run` once the plan and the checkpoint are known: refuse a
  resume that switches between a store and tokenising on the fly, a mask
  group that does not fit this number of processes, and a store too small for
  every step still to run.
* :func:`run_batches` at each stage: this rank's batches, from where the
  checkpoint or the previous stage left the plan.

The reader's state is the :class:`~encoder_recipes.data.store_plan.SequencePlanner`'s,
global and small: the same on every rank, saved by value after the step it
belongs to, so a run resumes on any number of processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from encoder_recipes.data.prepare import _download_dir, store_identity
from encoder_recipes.data.store import Store
from encoder_recipes.data.store_batches import StoreBatches, StoreSpec
from encoder_recipes.data.store_format import StoreError, tokenizer_hash
from encoder_recipes.data.store_plan import check_enough
from encoder_recipes.training.batches import Batch


def open_for_run(location: str, resolved: Any, registries: Any, tokenizer: Any = None) -> Store:
    """The store at ``location``, checked against the run's recipe and tokenizer.

    :param tokenizer: the tokenizer the run already has (a resumed run's), or
        None for a new run, which will take the store's own.
    """
    store = Store(location)
    if tokenizer is None:
        tok_hash, vocab_size = store.index["tokenizer_sha256"], store.index["vocab_size"]
    else:
        tok_hash, vocab_size = tokenizer_hash(tokenizer), len(tokenizer)
    store.check(tokenizer=tokenizer, identity=store_identity(resolved, registries, tok_hash, vocab_size))
    return store


def save_tokenizer(store: Store, dest: Path) -> None:
    """Copy the store's tokenizer (``STORE/tokenizer``) into ``dest``."""
    _download_dir(store.location, "tokenizer", Path(dest))


def _passes(stage_spec: Any) -> int:
    """Read-throughs of a source a stage may make before the store is too small (its ``epochs``, rounded up)."""
    epochs = stage_spec.epochs or 1
    return max(1, int(-(-epochs // 1)))


def check_run(store: Store | None, resolved: Any, registries: Any, plan: Any, *, first: int, last: int,
              data: dict[str, Any] | None, world: int) -> None:
    """Refuse, before any step, what would fail or go wrong later (see the module's doc).

    :param first: the next step to run; ``last``: the step the run stops before.
    :param data: the data position of the checkpoint resumed from (None: a new run).
    """
    from_store = data is not None and "drawn" in data["stream"]
    if data is not None and from_store != (store is not None):
        raise StoreError("the checkpoint's data position was saved by a run that "
                         + ("read a prepared store; resume with the same data.store"
                            if from_store else "tokenised on the fly; resume it without data.store"))
    if store is None:
        return
    recipe = resolved.recipe
    group = recipe.data.store_mask_group
    packed: list[tuple[int, int]] = []
    unpacked: list[tuple[int, int]] = []
    passes = 1
    for stage in plan.stages:
        lo, hi = max(first, stage.start), min(stage.start + stage.steps, last)
        if lo >= hi:
            continue
        spec = recipe.stages[stage.index]
        share = stage.batch_size // world
        if share % group:
            raise StoreError(f"stage {stage.name}: each of the {world} processes holds {share} rows of the "
                             f"{stage.batch_size}-sequence batch, not whole mask groups of {group} "
                             f"(data.store_mask_group); choose a group that divides {share}")
        context = resolved.component(registries, "context", spec.context)
        lengths = [(stage.batch_size, context.seq_len(plan.clock(step))) for step in range(lo, hi)]
        (unpacked if spec.packing == "none" else packed).extend(lengths)
        passes = max(passes, _passes(spec))
    state = data["stream"] if data is not None else None
    # lower bounds: documents for unpacked steps, tokens for packed ones; a source that runs out mid-stage
    # is still refused by the plan, at the step that needs it, after the last checkpoint
    check_enough(store, packing="none", steps=unpacked, passes=passes, state=state)
    check_enough(store, packing="best_fit", steps=packed, passes=passes, state=state)


class RunBatches:
    """The trainer's view of a stage: ``next()`` gives this rank's rows as a training :class:`Batch`."""

    def __init__(self, batches: StoreBatches) -> None:
        self.batches = batches

    def next(self, *, step: int, batch_size: int, seq_len: int, rate: float) -> Batch:
        rows = self.batches.next(step=step, batch_size=batch_size, seq_len=seq_len, rate=rate)
        return Batch(rows.input_ids, rows.attention_mask, rows.labels, rows.tokens, rows.doc_lengths)

    def state_after(self, step: int) -> dict[str, Any]:
        return self.batches.state_after(step)

    def close(self) -> None:
        self.batches.close()


def run_batches(store: Store, resolved: Any, tokenizer: Any, *, stage_index: int, masking: Any,
                steps: list[tuple[int, int, int, float]], data: dict[str, Any] | None, rank: int, world: int,
                workers: int, prefetch: int) -> RunBatches:
    """This rank's batches for one stage of a run.

    :param data: where the plan stands: None for a new run, this stage's
        checkpoint state (a resume inside the stage), or the previous stage's
        end state (the documents continue; a new packing starts).
    """
    same_stage = data is not None and data["stage"] == resolved.recipe.stages[stage_index].name
    return RunBatches(stage_batches(
        store, resolved, tokenizer, stage_index=stage_index, masking=masking, steps=steps, rank=rank, world=world,
        workers=workers, prefetch=prefetch, state=data["stream"] if same_stage else None,
        previous_stage_state=data["stream"] if data is not None and not same_stage else None,
        mask_group=resolved.recipe.data.store_mask_group))


def stage_batches(store: Store, resolved: Any, tokenizer: Any, *, stage_index: int, masking: Any,
                  steps: list[tuple[int, int, int, float]], rank: int, world: int, workers: int,
                  prefetch: int, state: dict[str, Any] | None = None,
                  previous_stage_state: dict[str, Any] | None = None, mask_group: int = 1) -> StoreBatches:
    """This rank's batches for ``steps`` (``(step, batch_size, seq_len, rate)``) of one stage.

    :param state: the plan's state saved after the last step done in this
        stage (a resume inside the stage), or None.
    :param previous_stage_state: the previous stage's final plan state: this
        stage reads on from the documents it stopped at (a new packing starts).
    :param mask_group: rows masked together (see :class:`StoreSpec`).
    """
    recipe = resolved.recipe
    spec_stage = recipe.stages[stage_index]
    spec = StoreSpec(
        store=store.location.url, weights=_fixed_weights(recipe, stage_index), mixture_seed=recipe.seed + stage_index,
        packing=spec_stage.packing, masking=masking, seed=recipe.seed, cls_id=tokenizer.cls_token_id,
        sep_id=tokenizer.sep_token_id, pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
        vocab_size=len(tokenizer), special_ids=list(tokenizer.all_special_ids), rank=rank, world=world,
        passes=_passes(spec_stage), state=state, mask_group=mask_group,
    )
    if state is None and previous_stage_state is not None:
        planner = spec.planner(store)
        planner.continue_from(previous_stage_state)
        spec.state = planner.state_dict()
    check_enough(store, packing=spec.packing, steps=[(b, L) for _, b, L, _ in steps], passes=spec.passes,
                 state=spec.state)
    return StoreBatches(spec, steps, workers=workers, prefetch=prefetch)


def _fixed_weights(recipe: Any, stage_index: int) -> dict[str, float]:
    """The stage's weights: a store's plan draws with fixed weights, not a mixture component's schedule."""
    from encoder_recipes.components.mixtures import Weights
    from encoder_recipes.data.mixing import mixture_ref

    ref = mixture_ref(recipe, stage_index)
    # the built-in fixed mixture answers for its weights; a schedule cannot be planned ahead into a store
    weights = Weights(Weights.Params(**ref.params)).fixed_weights() if ref.name == Weights.name else None
    if weights is None:
        raise ValueError(f"stage {recipe.stages[stage_index].name!r} mixes its data with {ref.name!r}: a prepared "
                         "store reads with fixed weights only (train without the store)")
    return weights
