"""The Japanese sample corpus: LibreOffice's Japanese help (Debian ``libreoffice-help-ja``)."""

from encoder_recipes.data.samples import SampleCorpus, has_cjk

#: Fill-mask probes in the help's domain, written for this project in the help's style (not taken from it).
#: ``answers`` holds every answer a reader of the help would accept.
PROBES = (
    {"text": "ドキュメントを{mask}するには、[ファイル] - [印刷] を選択します。", "answers": ["印刷"]},
    {"text": "{mask}キーを押しながらクリックします。", "answers": ["Shift", "Ctrl", "Alt", "Command", "コマンド", "Option"]},
    {"text": "表計算ドキュメントの{mask}に数式を入力します。", "answers": ["セル", "セル範囲", "入力行", "範囲"]},
    {"text": "このダイアログでは、選択したセルの{mask}を設定します。",
     "answers": ["書式", "書式設定", "属性", "背景色", "枠線", "保護", "配置", "フォント", "プロパティ"]},
    {"text": "新しい{mask}を作成します。",
     "answers": ["ドキュメント", "シート", "ファイル", "スタイル", "フォルダー", "テーブル", "データベース", "範囲", "ページ"]},
    {"text": "[書式] - [{mask}] を選択します。",
     "answers": ["セル", "ページ", "文字", "段落", "書式設定", "スタイル", "列", "行", "テキスト"]},
)

CORPUS = SampleCorpus(
    name="ja",
    language="ja",
    package="libreoffice-help-ja",
    in_script=has_cjk,  # a Japanese paragraph holds kana or kanji; English left untranslated does not
    unspaced=True,
    probes=PROBES,
)
