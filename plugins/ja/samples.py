"""The Japanese sample corpus: LibreOffice's Japanese help (Debian ``libreoffice-help-ja``)."""

from encoder_recipes.data.samples import SampleCorpus, has_cjk

CORPUS = SampleCorpus(
    name="ja",
    language="ja",
    package="libreoffice-help-ja",
    in_script=has_cjk,  # a Japanese paragraph holds kana or kanji; English left untranslated does not
    unspaced=True,
)
