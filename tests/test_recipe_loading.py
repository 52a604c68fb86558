"""Reading recipes: positions in errors, extends, overrides, scale; every issue at once."""

from __future__ import annotations

import textwrap

import pytest

from encoder_recipes.recipe_files import RecipeError
from encoder_recipes.schema import ScaleRule
from encoder_recipes.validation import load_recipe

BASE = """\
metadata:
  name: tiny
  language: fi
model:
  hidden_size: 64
  intermediate_size: 96
  num_hidden_layers: 3
  num_attention_heads: 2
  max_position_embeddings: 512
tokenizer: {name: bpe, vocab_size: 512}
data:
  sources:
    - {name: web, paths: ["corpus/*.txt"]}
stages:
  - name: short
    context: {name: fixed, seq_len: 128}
    steps: 100
    batch_size: 8
    lr: 1.0e-3
    lr_schedule: {name: linear_warmup_decay, warmup_steps: 10}
    masking: {name: mlm, rate: 0.3}
  - name: long
    context: {name: fixed, seq_len: 256}
    steps: 50
    batch_size: 4
    lr: 1.0e-4
    masking: {name: mlm, rate: 0.15}
"""


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issues_of(path, registries, **kw):
    with pytest.raises(RecipeError) as info:
        load_recipe(str(path), registries=registries, **kw)
    return info.value.issues


def test_valid_recipe_resolves_defaults(tmp_path, registries):
    resolved = load_recipe(str(write(tmp_path, BASE)), registries=registries)
    data = resolved.to_dict()
    assert data["optimizer"]["betas"] == [0.9, 0.999]  # the schema's default shows
    assert data["stages"][1]["lr_schedule"] == {"name": "constant", "scope": "stage"}  # component default shows
    assert data["stages"][0]["masking"]["mask_replace_prob"] == 0.8


# (recipe edit, expected line, field, fragment of the message)
MALFORMED = [
    ("lr: 1.0e-3", "lr: [1", 20, "", "YAML syntax error"),
    ("  name: tiny", "\tname: tiny", 2, "", "tabs"),
    ("    steps: 100", "    steps: many", 17, "stages[0].steps", "integer"),
    ("    steps: 100", "    steps: 0", 17, "stages[0].steps", "greater than 0"),
    ("    steps: 100", "    steps: -5", 17, "stages[0].steps", "greater than 0"),
    ("    batch_size: 8", "    batch_sise: 8", 18, "stages[0].batch_sise", "did you mean 'batch_size'"),
    ("  hidden_size: 64", "  hiden_size: 64", 5, "model.hiden_size", "did you mean 'hidden_size'"),
    ("{name: mlm, rate: 0.3}", "{name: mlm, rate: 1.3}", 21, "stages[0].masking.rate", "less than 1"),
    ("{name: mlm, rate: 0.3}", "{name: mlm, rate: 0}", 21, "stages[0].masking.rate", "greater than 0"),
    ("{name: mlm, rate: 0.3}", "{name: mlm, rat: 0.3}", 21, "stages[0].masking.rat", "did you mean 'rate'"),
    ("{name: mlm, rate: 0.3}", "{name: mlmm, rate: 0.3}", 21, "stages[0].masking.name", "did you mean 'mlm'"),
    ("{name: fixed, seq_len: 128}", "{name: fixd, seq_len: 128}", 16, "stages[0].context.name", "known: "),
    ("{name: fixed, seq_len: 256}", "{name: fixed, seq_len: 1024}", 23, "stages[1].context", "exceeds model.max_position_embeddings"),
    ("{name: fixed, seq_len: 256}", "{name: fixed, seq_len: 64}", 23, "stages[1].context", "context shrinks"),
    ("  - name: long", "  - name: short", 22, "stages[1].name", "used twice"),
    ("  language: fi\n", "  language: fi\n  requires: [no-such-plugin]\n", 4, "metadata.requires[0]", "not installed"),
    ("    - {name: web, paths: [\"corpus/*.txt\"]}", "    - {name: web}", 13, "data.sources[0]", "exactly one of sample, paths, dataset"),
    ("{name: linear_warmup_decay, warmup_steps: 10}", "{name: linear_warmup_decay, warmup_steps: -1}", 20,
     "stages[0].lr_schedule.warmup_steps", "greater than or equal to 0"),
    ("    steps: 100\n", "    steps: 100\n    tokens: 1000\n", 15, "stages[0]", "exactly one of steps or tokens"),
    ("  num_attention_heads: 2", "  num_attention_heads: 5", 4, "model", "not divisible"),
]


@pytest.mark.parametrize("old,new,line,field,fragment", MALFORMED, ids=[m[4][:30] for m in MALFORMED])
def test_malformed_recipe_names_file_line_and_field(tmp_path, registries, old, new, line, field, fragment):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    issues = issues_of(path, registries)
    match = [i for i in issues if fragment in i.message]
    assert match, [str(i) for i in issues]
    issue = match[0]
    assert issue.file == str(path)
    assert issue.line == line, str(issue)
    if field:
        assert issue.field == field, str(issue)


def test_every_issue_is_reported_at_once(tmp_path, registries):
    text = BASE.replace("batch_size: 8", "batch_sise: 8").replace("hidden_size: 64", "hiden_size: 64")
    text = text.replace("{name: mlm, rate: 0.15}", "{name: mlmm, rate: 0.15}")
    issues = issues_of(write(tmp_path, text), registries)
    fields = {i.field for i in issues}
    assert {"stages[0].batch_sise", "model.hiden_size"} <= fields
    # component names are checked once the schema passes; each pass reports all it finds
    text = BASE.replace("{name: mlm, rate: 0.3}", "{name: mlmm}").replace("{name: fixed, seq_len: 256}", "{name: fixd}")
    issues = issues_of(write(tmp_path, text), registries)
    assert {i.field for i in issues} == {"stages[0].masking.name", "stages[1].context.name"}


def test_extends_merges_and_errors_point_into_the_child(tmp_path, registries):
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, """\
        extends: base.yaml
        metadata: {name: child}
        stages:
          - name: long
            lr: 5.0e-5
          - name: anneal
            context: {name: fixed, seq_len: 256}
            steps: 10
            batch_size: 4
            lr: 1.0e-5
            masking: {name: mlm, rate: 0.1}
        """, "child.yaml")
    recipe = load_recipe(str(child), registries=registries).recipe
    assert [s.name for s in recipe.stages] == ["short", "long", "anneal"]
    assert recipe.stages[1].lr == 5e-5 and recipe.stages[1].steps == 50  # merged by stage name
    assert recipe.metadata.language == "fi"
    bad = write(tmp_path, "extends: base.yaml\nmetadata: {name: child}\nstages:\n  - name: long\n    lr: -1\n", "bad.yaml")
    (issue,) = issues_of(bad, registries)
    assert (issue.file, issue.line, issue.field) == (str(bad), 5, "stages[1].lr")


def test_extends_cycle_and_missing_parent(tmp_path, registries):
    a = write(tmp_path, "extends: b.yaml\nmetadata: {name: a}\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\nmetadata: {name: b}\n", "b.yaml")
    (issue,) = issues_of(a, registries)
    assert "extends cycle" in issue.message and issue.line == 1
    missing = write(tmp_path, "metadata: {name: m}\nextends: nowhere.yaml\n", "m.yaml")
    (issue,) = issues_of(missing, registries)
    assert issue.line == 2 and "no registered recipe or file named 'nowhere.yaml'" in issue.message


def test_overrides_by_position_and_by_stage_name(tmp_path, registries):
    path = write(tmp_path, BASE)
    recipe = load_recipe(str(path), registries=registries,
                         overrides=["stages.long.lr=3e-4", "stages.0.masking.rate=0.2", "seed=7"]).recipe
    assert recipe.stages[1].lr == 3e-4 and recipe.stages[0].masking.params["rate"] == 0.2 and recipe.seed == 7


@pytest.mark.parametrize("override,fragment", [
    ("stages.long.lrr=1", "no key 'lrr'"),
    ("stages.middle.lr=1", "no item 'middle'"),
    ("modle.hidden_size=8", "did you mean 'model'"),
    ("stages.0.masking.rate=2", "less than 1"),
    ("seed", "must look like key.path=value"),
])
def test_bad_overrides_are_refused(tmp_path, registries, override, fragment):
    issues = issues_of(write(tmp_path, BASE), registries, overrides=[override])
    assert any(fragment in i.message for i in issues), [str(i) for i in issues]


def test_yaml_is_data_only(tmp_path, registries):
    path = write(tmp_path, "metadata: !!python/object/apply:os.system ['echo pwned']\n")
    (issue,) = issues_of(path, registries)
    assert "YAML" in issue.message


def test_smoke_scale_keeps_shape_and_shrinks_size(tmp_path, registries):
    resolved = load_recipe(str(write(tmp_path, BASE)), registries=registries, scale="smoke")
    recipe = resolved.recipe
    assert [s.name for s in recipe.stages] == ["short", "long"]
    assert [s.context.params["seq_len"] for s in recipe.stages] == [64, 64]  # 128/8, 256/8 -> min 64
    # the rule's tokens are shared as the full scale's are (100×8×128 : 50×4×256 = 2 : 1), at 16 × 64 a step
    budget = ScaleRule().total_tokens
    short, long = round(budget * 2 / 3 / (16 * 64)), round(budget / 3 / (16 * 64))
    assert [s.steps for s in recipe.stages] == [short, long]
    assert recipe.stages[0].lr_schedule.params["warmup_steps"] == round(10 * short / 100)  # warmup shrinks with its stage
    assert [s.lr for s in recipe.stages] == pytest.approx([1e-3 * 64 / 128, 1e-4 * 64 / 128])  # width ratio
    assert recipe.data.sources[0].sample == "fi"
    assert recipe.tokenizer.params["vocab_size"] == 4096
    assert recipe.stages[1].masking.params["rate"] == 0.15


def test_smoke_warmup_lasts_at_least_the_rule_minimum_within_a_tenth_of_its_stage(tmp_path, registries):
    # the paper's warmup fraction of a short run is a few steps (1 of 100 here -> about 33 at smoke scale)
    text = BASE.replace("warmup_steps: 10}", "warmup_steps: 1}")
    recipe = load_recipe(str(write(tmp_path, text)), registries=registries, scale="smoke").recipe
    assert round(1 * recipe.stages[0].steps / 100) < 100
    assert recipe.stages[0].lr_schedule.params["warmup_steps"] == ScaleRule().min_warmup_steps == 100
    # a minimum longer than a tenth of the stage takes a tenth; no warmup stays none
    text += "scales:\n  smoke: {min_warmup_steps: 100000}\n"
    recipe = load_recipe(str(write(tmp_path, text)), registries=registries, scale="smoke").recipe
    assert recipe.stages[0].lr_schedule.params["warmup_steps"] == recipe.stages[0].steps // 10
    text = BASE.replace("warmup_steps: 10}", "warmup_steps: 0}")
    recipe = load_recipe(str(write(tmp_path, text)), registries=registries, scale="smoke").recipe
    assert recipe.stages[0].lr_schedule.params["warmup_steps"] == 0


def test_unknown_scale_lists_known(tmp_path, registries):
    issues = issues_of(write(tmp_path, BASE), registries, scale="tiny")
    assert "unknown scale 'tiny'; this recipe has: smoke" in issues[0].message


def test_extends_replaces_a_component_that_changes_name(tmp_path, registries):
    write(tmp_path, BASE.replace("{name: bpe, vocab_size: 512}", "{name: pretrained, path: some/tokenizer}"), "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nmetadata: {name: child}\ntokenizer: {name: bpe, vocab_size: 256}\n"
                  "stages:\n  - name: short\n    masking: {rate: 0.2}\n", "child.yaml")
    recipe = load_recipe(str(child), registries=registries).recipe
    assert recipe.tokenizer.name == "bpe" and "path" not in recipe.tokenizer.params  # replaced, not merged
    assert recipe.stages[0].masking.name == "mlm" and recipe.stages[0].masking.params["rate"] == 0.2  # merged


@pytest.mark.parametrize("spelling", ["ja_llmjp", "ja-llmjp", "JA_LLMJP"])
def test_registered_names_normalise_underscores_and_dashes(registries, spelling):
    assert load_recipe(spelling, registries=registries).recipe.metadata.name == "ja-llmjp"


def test_extends_normalises_names_and_suggests_a_close_one(tmp_path, registries):
    child = tmp_path / "child.yaml"
    child.write_text("extends: ja_llmjp\nmetadata: {name: child, language: ja}\n", encoding="utf-8")
    assert load_recipe(str(child), registries=registries).recipe.stages[0].name == "stage1"
    child.write_text("extends: ja_llmpj\nmetadata: {name: child, language: ja}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"extends: no registered recipe or file named 'ja_llmpj' "
                                          r"\(did you mean 'ja-llmjp'\?\); registered: "):
        load_recipe(str(child), registries=registries)


def test_a_new_stage_reports_its_unknown_component_with_its_missing_keys(tmp_path, registries):
    child = tmp_path / "child.yaml"
    child.write_text(textwrap.dedent("""\
        extends: ja-llmjp
        metadata: {name: child, language: ja}
        stages:
          - name: stage3
            lr_schedule: {name: cosine_with_restarts}
        """), encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(child), registries=registries)
    messages = {(issue.field, issue.message.split(";")[0]) for issue in caught.value.issues}
    assert ("stages[2].lr_schedule.name", "unknown lr_schedule 'cosine_with_restarts'") in messages
    assert {("stages[2].context", "required key 'context' is missing"),
            ("stages[2].masking", "required key 'masking' is missing")} <= messages
