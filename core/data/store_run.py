"""What a training run calls to read a stage from a prepared store (one function per moment).

* :func:`open_for_run` at set-up: open the store, refuse it if it was made
  with another tokenizer, from other data, or without the word starts the
  recipe's masking needs.
* :func:`stage_batches` at each stage: the rank's :class:`StoreBatches` for
  the stage's steps, refused up front when the store cannot hold them.

The run must train with the store's tokenizer (``STORE/tokenizer``): it is
the one the ids come from, and :func:`open_for_run` checks it by hash.
"""

from __future__ import annotations

from typing import Any

from encoder_recipes.data.prepare import store_identity
from encoder_recipes.data.store import Store
from encoder_recipes.data.store_batches import StoreBatches, StoreSpec
from encoder_recipes.data.store_format import tokenizer_hash
from encoder_recipes.data.store_plan import check_enough


def open_for_run(location: str, resolved: Any, registries: Any, tokenizer: Any) -> Store:
    """The store at ``location``, checked against the run's recipe and tokenizer."""
    store = Store(location)
    store.check(tokenizer=tokenizer,
                identity=store_identity(resolved, registries, tokenizer_hash(tokenizer), len(tokenizer)))
    return store


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
    epochs = spec_stage.epochs or 1
    spec = StoreSpec(
        store=store.location.url, weights=_fixed_weights(recipe, stage_index), mixture_seed=recipe.seed + stage_index,
        packing=spec_stage.packing, masking=masking, seed=recipe.seed, cls_id=tokenizer.cls_token_id,
        sep_id=tokenizer.sep_token_id, pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
        vocab_size=len(tokenizer), special_ids=list(tokenizer.all_special_ids), rank=rank, world=world,
        passes=max(1, int(-(-epochs // 1))), state=state, mask_group=mask_group,
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
    from encoder_recipes.data.mixing import mixture_ref

    ref = mixture_ref(recipe, stage_index)
    if ref.name != "weights":
        raise ValueError(f"stage {recipe.stages[stage_index].name!r} mixes its data with {ref.name!r}: a prepared "
                         "store reads with fixed weights only (train without the store)")
    return dict(ref.params.get("weights", {}))
