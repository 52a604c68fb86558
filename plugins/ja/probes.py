"""Japanese fill-mask probes: the six sentences of the llm-jp-modernbert paper's Table 3.

Source: Sugiura et al., "llm-jp-modernbert" (arXiv 2504.15544), Table 3
(fill-mask test; seed file 001, §3.4). The paper writes the mask as ``{}``;
here it is ``{mask}``. ``answers`` holds the predictions the paper's models
gave that are correct for the sentence, first the one llm-jp-modernbert-base
gave after Stage 2; where we accept a further answer it is marked "ours".
"""

from __future__ import annotations

import copy

FILL_MASK_PROBES: list[dict] = [
    {
        # Table 3 row 1: llm-jp-modernbert-base → エベレスト (Mt. Everest).
        # modernbert-ja-130m's 富士山 is not accepted: the sentence says 地球上で
        # ("on earth"), and Mt. Fuji is only Japan's highest. チョモランマ (ours)
        # is Everest's other common Japanese name.
        "text": "{mask}は、地球上で最も高い山として知られ、世界中の登山家たちの憧れの地となっています。",
        "answers": ["エベレスト", "チョモランマ"],
    },
    {
        # Table 3 row 2: modernbert-ja-130m → 明治維新 (Meiji Restoration),
        # llm-jp-modernbert-base → COVID-19; both fit "an important historical
        # event" (§3.4 points to COVID-19 as recent knowledge from corpus v4).
        "text": "{mask}は、歴史上の重要な出来事であり、多くの人々の生活や社会のあり方に大きな影響を与えました。",
        "answers": ["明治維新", "COVID-19"],
    },
    {
        # Table 3 row 3: llm-jp-modernbert-base → 長江 (Yangtze). The sentence
        # names no region, so the longest rivers of the world (ナイル川,
        # アマゾン川) and of Japan (信濃川) are accepted too (ours); 利根川
        # (modernbert-ja-130m) is not the longest anywhere.
        "text": "最も長い川は{mask}です。その流域には多くの都市や村が広がり、豊かな自然や文化が育まれています。",
        "answers": ["長江", "ナイル川", "アマゾン川", "信濃川"],
    },
    {
        # Table 3 row 4: llm-jp-modernbert-base → 12.
        "text": "1年は{mask}ヶ月です。",
        "answers": ["12"],
    },
    {
        # Table 3 row 5: modernbert-ja-130m and llm-jp-modernbert-base → サンキュー.
        "text": "英語で「ありがとう」は{mask}と言います。",
        "answers": ["サンキュー"],
    },
    {
        # Table 3 row 6: llm-jp-modernbert-base → 365.
        "text": "1年はおよそ{mask}日です。",
        "answers": ["365"],
    },
]


def probes_for(language: str) -> list[dict] | None:
    """A fresh copy of the probes for ``language`` ("ja"), or None for any other language."""
    return copy.deepcopy(FILL_MASK_PROBES) if language == "ja" else None
