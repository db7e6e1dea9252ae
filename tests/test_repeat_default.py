"""(B1)'s default decided from the training data: the bar on adjacent repeats is on where responses rarely repeat a
word in a row, off where they often do, and a config that sets it decides for itself."""

import json

import pytest

from diffusion_lm import train_tokenizer
from diffusion_lm.text.pipeline import DiffusionLMPipeline
from diffusion_lm.text.repeats import REPEAT_SHARE_LIMIT, RepeatBlock, repeat_share

from .test_training import run


def test_repeat_share_counts_the_responses_the_bar_would_change():
    tok = train_tokenizer(["he He w1 w2 w3 , ;"] * 3, kind="wordlevel", vocab_size=64)
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    responses = [
        ids("w1 w2 w3"),      # none
        ids("w1 w1 w2"),      # a repeat
        ids("w1 , w1"),       # the same word across a pause
        ids("He he w2"),      # one word up to case
        ids("w1 w2 w1"),      # not adjacent
        ids("w3"),            # one token
    ]
    share = repeat_share(responses, RepeatBlock.of(tok), tok.pad_token_id)
    assert share == pytest.approx(3 / 6)
    assert repeat_share([ids("w1 w1")], RepeatBlock(), tok.pad_token_id) == 1.0  # no classes: token ids alone
    assert repeat_share([], RepeatBlock.of(tok), tok.pad_token_id) == 0.0


def _pairs_folder(tmp_path, with_repeats: bool):
    """Prompt w_a w_b w_c -> response w_c w_b w_a, of distinct words, or with the first word doubled."""
    folder = tmp_path / ("repeats" if with_repeats else "distinct")
    folder.mkdir()
    rows = []
    for i in range(300):
        words = [f"w{(i + k * 7) % 20}" for k in range(3)]
        response = words[::-1] + ([words[0]] if with_repeats and i % 2 else [])
        rows.append({"prompt": " ".join(words), "response": " ".join(response)})
    for name in ("train", "validation"):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize("with_repeats,expected", [(False, True), (True, False)])
def test_training_sets_the_bar_from_its_responses(tmp_path, with_repeats, expected, caplog):
    data = _pairs_folder(tmp_path, with_repeats)
    caplog.set_level("INFO")
    run(data, tmp_path / "run", "--optim.max_steps", "2", "--eval.every", "2", "--checkpoint.every", "2")
    saved = DiffusionLMPipeline.from_pretrained(tmp_path / "run" / "model").generation_config
    assert saved.block_adjacent_repeats is expected
    share = "50.00%" if with_repeats else "0.00%"
    assert f"block_adjacent_repeats: {'on' if expected else 'off'} ({share} of training responses" in caplog.text
    assert REPEAT_SHARE_LIMIT == 0.01


def test_a_config_that_sets_the_bar_keeps_it(tmp_path):
    data = _pairs_folder(tmp_path, with_repeats=False)
    run(data, tmp_path / "run", "--optim.max_steps", "2", "--eval.every", "2", "--checkpoint.every", "2",
        "--generation.block_adjacent_repeats", "false")
    assert DiffusionLMPipeline.from_pretrained(tmp_path / "run" / "model").generation_config.block_adjacent_repeats \
        is False
