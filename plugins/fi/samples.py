"""The Finnish sample corpus: LibreOffice's Finnish help (Debian ``libreoffice-help-fi``)."""

from encoder_recipes.data.samples import SampleCorpus

#: Fill-mask probes in the help's domain, written for this project in the help's style (not taken from it).
#: ``answers`` holds every answer a reader of the help would accept ("Vaihto" is the Shift key).
PROBES = (
    {"text": "Tulosta asiakirja valitsemalla {mask} - Tulosta.", "answers": ["Tiedosto"]},
    {"text": "Pidä {mask}-näppäintä painettuna ja napsauta.",
     "answers": ["Vaihto", "Ctrl", "Alt", "Komento", "Shift", "Vaihtonäppäin"]},
    {"text": "Valitse {mask} - Asetukset.", "answers": ["Työkalut"]},
    {"text": "Valitse Muotoilu - {mask}.",
     "answers": ["Kappale", "Merkki", "Sivu", "Solut", "Viiva", "Alue", "Sarakkeet", "Rivi", "Sarake", "Tyylit"]},
    {"text": "Tässä valintaikkunassa voit muuttaa valittujen solujen {mask}.",
     "answers": ["muotoilua", "muotoilun", "ominaisuuksia", "reunoja", "taustaa", "kokoa", "leveyttä", "korkeutta"]},
    {"text": "Napsauta {mask}-painiketta.",
     "answers": ["OK", "Uusi", "Lisää", "Avaa", "Poista", "Peruuta", "Sulje", "Ohje", "Käytä", "Selaa"]},
)

#: Untranslated (English) paragraphs are dropped by comparison with the English help, so no script check.
CORPUS = SampleCorpus(name="fi", language="fi", package="libreoffice-help-fi", probes=PROBES)
