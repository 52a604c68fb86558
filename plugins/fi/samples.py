"""The Finnish sample corpus: LibreOffice's Finnish help (Debian ``libreoffice-help-fi``)."""

from encoder_recipes.data.samples import SampleCorpus

#: Untranslated (English) paragraphs are dropped by comparison with the English help, so no script check.
CORPUS = SampleCorpus(name="fi", language="fi", package="libreoffice-help-fi")
