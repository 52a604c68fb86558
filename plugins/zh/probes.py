"""Chinese fill-mask probes.

Written for this project, not taken from a seed: the Chinese ModernBERT
summary (seed 004) reports no fill-mask test. Each is a short, unambiguous
general-knowledge sentence; answers are the common word (and the numeral
form where there are two).
"""

from __future__ import annotations

import copy

FILL_MASK_PROBES: list[dict] = [
    {"text": "中国的首都是{mask}。", "answers": ["北京"]},
    {"text": "一年有{mask}个月。", "answers": ["12", "十二"]},
    {"text": "一个星期有{mask}天。", "answers": ["7", "七"]},
    {"text": "世界上最高的山峰是{mask}。", "answers": ["珠穆朗玛峰", "珠峰"]},
    {"text": "中国最长的河流是{mask}。", "answers": ["长江"]},
    {"text": "《红楼梦》的作者是{mask}。", "answers": ["曹雪芹"]},
]


def probes_for(language: str) -> list[dict] | None:
    """A fresh copy of the probes for ``language`` ("zh"), or None for any other language."""
    return copy.deepcopy(FILL_MASK_PROBES) if language == "zh" else None
