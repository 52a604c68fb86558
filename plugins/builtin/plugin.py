"""Hook implementations registering the built-in components.

The built-ins come in through the same entry-point group (``builtin``) as
any outside plugin; the components themselves live in
``encoder_recipes.components`` and ``encoder_recipes.evaluation``.
"""

from encoder_recipes.components import context, lr_schedules, masking, mixtures, optimizers, tokenizers
from encoder_recipes.data.samples import SampleCorpus
from encoder_recipes.evaluation import embeddings, fill_mask, finetune, mlm, pppl, retrieval
from encoder_recipes.hookspecs import hookimpl

#: English: the LibreOffice help's original text, which the other sample
#: corpora are checked against for untranslated paragraphs.
#: Its in-domain fill-mask probes are written for this project in the help's style (not taken from it).
ENGLISH_SAMPLE = SampleCorpus(name="en", language="en", package="libreoffice-help-en-us", probes=(
    {"text": "To print the document, choose File - {mask}.", "answers": ["Print"]},
    {"text": "Hold down the {mask} key and click.", "answers": ["Shift", "Ctrl", "Alt", "Command", "Option"]},
    {"text": "Enter the formula in a {mask} of the spreadsheet.", "answers": ["cell", "row", "column", "range"]},
    {"text": "Choose Tools - {mask}.", "answers": ["Options", "AutoCorrect", "Macros", "Customize", "Language"]},
))


@hookimpl
def encoder_recipes_register_lr_schedules():
    return [
        lr_schedules.Constant,
        lr_schedules.LinearWarmupDecay,
        lr_schedules.WarmupStableDecay,
        lr_schedules.DampedCosine,
    ]


@hookimpl
def encoder_recipes_register_context_schedules():
    return [context.Fixed, context.Stepwise]


@hookimpl
def encoder_recipes_register_maskings():
    return [masking.TokenMasking, masking.WholeWordMasking]


@hookimpl
def encoder_recipes_register_tokenizers():
    return [tokenizers.BPE, tokenizers.UnigramTokenizer, tokenizers.Pretrained]


@hookimpl
def encoder_recipes_register_evaluators():
    return [
        mlm.MLMEvaluator,
        pppl.PseudoPerplexityEvaluator,
        embeddings.AlignmentUniformityEvaluator,
        retrieval.RetrievalEvaluator,
        fill_mask.FillMaskEvaluator,
        finetune.FinetuneEvaluator,
    ]


@hookimpl
def encoder_recipes_register_optimizers():
    return [optimizers.AdamW, optimizers.StableAdamW]


@hookimpl
def encoder_recipes_register_mixtures():
    return [mixtures.Weights, mixtures.Temperature]


@hookimpl
def encoder_recipes_register_sample_corpora():
    return [ENGLISH_SAMPLE]
