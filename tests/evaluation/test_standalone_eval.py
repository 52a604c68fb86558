"""``encoder-recipes eval`` on model directories this project did not write: plain transformers saves."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from encoder_recipes.evaluation.standalone import add_eval_parser, card_language, parse_params
from encoder_recipes.registry import default_registries

from .conftest import tiny_modernbert


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="encoder-recipes")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.registries = default_registries  # what the CLI's main hands every command
    return args.func(args)


@pytest.fixture
def modernbert_dir(tmp_path, tokenizer):
    path = tmp_path / "plain-modernbert"
    tiny_modernbert(tokenizer, seed=1).save_pretrained(path)  # plain transformers, no card, no project files
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def bert_dir(tmp_path, tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path / "plain-bert"
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_eval_on_a_plain_modernbert_save(modernbert_dir, use_sample_cache, tmp_path, capsys):
    out_file = tmp_path / "results.json"
    status = run_cli(["eval", str(modernbert_dir), "--language", "en", "-e", "mlm", "-e", "pppl",
                      "-e", "alignment_uniformity", "-e", "retrieval", "-e", "fill_mask",
                      "--set", "mlm.num_sequences=4", "--set", "mlm.seq_len=64",
                      "--set", "pppl.bins=[[0,32],[32,64],[64,512]]", "--set", "pppl.positions=3",
                      "--set", "pppl.sequences_per_bin=2", "--set", "alignment_uniformity.num_positive=8",
                      "--set", "alignment_uniformity.num_random=8", "--output", str(out_file), "--device", "cpu"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "pppl/0-32" in printed and "retrieval/recall@10" in printed
    data = json.loads(out_file.read_text())
    results = data["results"]
    assert data["language"] == "en" and data["model_type"] == "modernbert"
    assert results["mlm/loss"] > 0 and results["pppl/32-64/sequences"] == 2
    assert "skipped" in results["pppl/64-512/note"]  # the model takes 256 positions
    assert results["alignment_uniformity/positive_pairs"] == 8
    assert sum(data["details"]["alignment_uniformity"]["random"]["counts"]) == 8
    assert [e["name"] for e in data["evaluators"]] == ["mlm", "pppl", "alignment_uniformity", "retrieval", "fill_mask"]


def test_eval_on_a_plain_bert_save_prints_json(bert_dir, use_sample_cache, tmp_path, capsys):
    status = run_cli(["eval", str(bert_dir), "--language", "en", "-e", "pppl", "-e", "retrieval", "--json",
                      "--set", "pppl.bins=[[0,64],[64,128]]", "--set", "pppl.positions=2",
                      "--set", "pppl.sequences_per_bin=2", "--output", str(tmp_path / "bert.json")])
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model_type"] == "bert"
    assert data["results"]["pppl/0-64"] > 1.0 and data["results"]["retrieval/queries"] == 15


def test_documents_from_a_file_and_language_from_the_card(modernbert_dir, tmp_path, capsys):
    (modernbert_dir / "README.md").write_text("---\nlanguage: [fi]\nlibrary_name: transformers\n---\n# m\n")
    assert card_language(modernbert_dir) == "fi"
    docs = tmp_path / "docs.txt"
    docs.write_text("first paragraph of one page about cells\n" * 3 + "another document about the page margins\n")
    status = run_cli(["eval", str(modernbert_dir), "-e", "pppl", "--documents", str(docs), "--set",
                      "pppl.bins=[[0,16]]", "--set", "pppl.positions=2", "--output", str(tmp_path / "o.json")])
    assert status == 0
    assert json.loads((tmp_path / "o.json").read_text())["language"] == "fi"


def test_errors_are_reported_not_raised(modernbert_dir, tmp_path, capsys):
    assert run_cli(["eval", str(modernbert_dir), "--language", "en", "-e", "ppl"]) == 2
    assert "did you mean 'pppl'" in capsys.readouterr().err
    assert run_cli(["eval", str(modernbert_dir), "--language", "en", "-e", "pppl", "--set", "pppl.nope=1"]) == 2
    assert run_cli(["eval", str(modernbert_dir), "-e", "pppl"]) == 2  # no card, no --language
    assert "--language" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not among"):
        parse_params(["mlm.seq_len=3"], ["pppl"])
    assert parse_params(["pppl.bins=[[0, 8]]"], ["pppl"]) == {"pppl": {"bins": [[0, 8]]}}
