"""The smoke rule for multilingual mixtures: full-scale language sets mapped onto the offline corpora.

A recipe such as mmBERT grows its language set stage by stage (60 → 110 →
1,833 languages) while lowering the temperature τ. Offline there are only
the few languages plugins register sample corpora for. With
``scales.NAME.languages: [en, zh, ja, fi]`` (listed in the order the
full-scale sets take them in, largest first) the scale:

* trains on one source per listed language, its sample corpus, named by the
  language (in place of ``data.sources``; ``data.mixture`` becomes equal weights);
* keeps every ``temperature`` mixture's τ (or τ schedule) and maps its
  language set by rank: with ``n`` distinct full-scale set sizes in the run
  (a list's length, a count, or every source), a stage whose set is the
  ``i``-th smallest draws from the first ``ceil(S × i / n)`` of the ``S``
  offline languages. mmBERT's 60 → 110 → 1,833 over en, zh, ja, fi gives
  {en, zh} → {en, zh, ja} → all four: the sets still grow, and in the same
  number of steps;
* draws by ``temperature`` sizes, so each language's size is its sample
  corpus's count of training documents, and ``premixed`` (a source that only
  exists at full scale) is dropped;
* gives a stage with any other mixture (fixed weights over full-scale
  sources) all offline languages equally.
"""

from __future__ import annotations

import math
from typing import Any

from encoder_recipes.data.samples import corpus_for_language


def offline_languages(data: dict[str, Any], languages: list[str], registries: Any) -> list[str]:
    """Rewrite the (dumped) recipe ``data`` to mix ``languages``' sample corpora; return the problems."""
    problems = []
    sources = []
    for language in languages:
        corpus = corpus_for_language(language, registries)
        if corpus is None:
            problems.append(f"no plugin registers a sample corpus for language {language!r}")
            continue
        sources.append({"name": language, "sample": corpus.name})
    if problems:
        return problems
    full_sources = len(data["data"]["sources"])
    counts = []
    for stage in data["stages"]:
        ref = stage.get("mixture") or data["data"]["mixture"]
        counts.append(_set_size(ref, full_sources))
    ranks = sorted({c for c in counts if c is not None})
    for stage, count in zip(data["stages"], counts):
        if count is None:
            stage["mixture"] = None  # fixed weights over full-scale sources: every offline language equally
            continue
        ref = dict(stage.get("mixture") or data["data"]["mixture"])
        take = math.ceil(len(sources) * (ranks.index(count) + 1) / len(ranks))
        ref.update(languages=[s["name"] for s in sources[:take]], premixed=None)
        stage["mixture"] = ref
    data["data"]["sources"] = sources
    data["data"]["mixture"] = {}
    return []


def _set_size(ref: Any, full_sources: int) -> int | None:
    """The full-scale size of a temperature mixture's language set; None for another mixture."""
    if not isinstance(ref, dict) or ref.get("name") != "temperature":
        return None
    languages = ref.get("languages")
    if languages is None:
        return full_sources
    return languages if isinstance(languages, int) else len(languages)
