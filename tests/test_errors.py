"""Errors at the edges: each names what is wrong with which file, and what to do."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffusion_lm.text.pipeline import DiffusionLMPipeline
from training.config import ConfigError, load_config

from .text_helpers import reverse_pairs, tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m") / "model"
    DiffusionLMPipeline(*tiny_model()).save_pretrained(folder)
    return folder


def test_a_typo_in_a_local_folder_says_no_such_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no such folder: runs/dmeo/model .*not a Hub repo id"):
        DiffusionLMPipeline.from_pretrained("runs/dmeo/model")


def test_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="has no config.json: it is not a saved diffusion-lm model"):
        DiffusionLMPipeline.from_pretrained(tmp_path)


def test_a_name_that_is_neither_a_folder_nor_reachable(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # read at import: the variable alone retried for 20 s
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="nope is not a local folder .*the Hugging Face Hub, where it would be a "
                                         "repository id, is not reachable"):
        DiffusionLMPipeline.from_pretrained("nope")
    assert time.perf_counter() - start < 5, "an unreachable Hub is reported at once, not after retries"


def test_a_name_without_a_network_fails_fast_and_says_so(monkeypatch, tmp_path):
    """No network (the Hub's host refuses the connection): the same clear error, without the client's retries."""
    import socket

    from diffusion_lm.text import hub

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("no network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.chdir(tmp_path)
    assert hub.hub_reachable() is False
    with pytest.raises(ValueError, match="nope is not a local folder .*not reachable"):
        DiffusionLMPipeline.from_pretrained("nope")


def test_half_written_weights_are_called_damaged(saved, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="model.safetensors is damaged .*save the model again"):
        DiffusionLMPipeline.from_pretrained(broken)


def test_a_config_that_does_not_match_the_weights(saved, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(saved, other)
    config = json.loads((other / "config.json").read_text())
    config["vocab_size"] += 5
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json does not match the weights"):
        DiffusionLMPipeline.from_pretrained(other)


def test_loading_prints_no_progress_bar(saved, capfd):
    DiffusionLMPipeline.from_pretrained(saved)
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


def test_generate_command_line_names_a_missing_input_and_a_bad_line(saved, tmp_path, capsys):
    run = lambda *args: subprocess.run([sys.executable, "-m", "inference.generate", "--model", str(saved), *args],
                                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    missing = run("--input", str(tmp_path / "missing.jsonl"))
    assert (missing.returncode == 2 and "missing.jsonl: no such file" in missing.stderr
            and "Traceback" not in missing.stderr)
    from inference.generate import main  # in-process: the same main(), without a second start-up

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "w1 w2"}\n{not json\n')
    code = main(["--model", str(saved), "--input", str(bad)])
    assert code == 2 and f"{bad}:2 is not valid JSON (Expecting property name" in capsys.readouterr().err


# ----------------------------------------------------------------------------- training data


def _config(tmp_path, train, validation, *extra):
    return load_config(ROOT / "configs" / "tiny.yaml", ["--output_dir", str(tmp_path / "run"),
                                                        "--data.train_files", f"[{train}]",
                                                        "--data.validation_files", f"[{validation}]", *extra])


def test_a_missing_data_file_is_named(tmp_path):
    from training.data import load_raw

    config = _config(tmp_path, tmp_path / "nothing.jsonl", tmp_path / "nothing_either.jsonl")
    with pytest.raises(ConfigError, match="data.train_files: .*nothing.jsonl does not exist"):
        load_raw(config.data, 0)


def test_bundled_data_is_built_when_missing(tmp_path, monkeypatch):
    """The README's first command works on a fresh clone: configs/tiny.yaml's data are built on demand."""
    from training.data import load_raw

    monkeypatch.chdir(tmp_path)
    config = load_config(ROOT / "configs" / "tiny.yaml")
    train, validation = load_raw(config.data, 0)
    assert ((tmp_path / "data" / "generated" / "synthetic" / "train.jsonl").exists() and len(train) > 1000
            and len(validation) > 10)


def test_split_files_with_other_field_names_name_the_setting(tmp_path):
    from training.data import load_raw

    rows = [{"prompt": p, "response": r} for p, r in reverse_pairs(50, 0)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps({"question": r["prompt"], "answer": r["response"]}) + "\n"
                                                for r in rows))
    config = _config(tmp_path, tmp_path / "train.jsonl", tmp_path / "val.jsonl")
    with pytest.raises(ConfigError, match="validation data has no prompt column 'prompt'; set data.prompt_field"):
        load_raw(config.data, 0)


def test_malformed_data_file_is_named(tmp_path):
    """The file and the line: datasets' own error names neither."""
    from training.data import load_raw

    (tmp_path / "train.jsonl").write_text('{"prompt": "w1", "response": "w1"}\n{oops\n')
    config = _config(tmp_path, tmp_path / "train.jsonl", tmp_path / "train.jsonl")
    with pytest.raises(ConfigError, match=r"data.train_files: .*train.jsonl:2 is not valid JSON \(Expecting property "
                                          r"name enclosed in double quotes, column 2\); each line must be one JSON"):
        load_raw(config.data, 0)
    (tmp_path / "list.jsonl").write_text('["w1", "w2"]\n')
    with pytest.raises(ConfigError, match="list.jsonl:1 is a JSON list, not an object"):
        load_raw(_config(tmp_path, tmp_path / "list.jsonl", tmp_path / "train.jsonl").data, 0)


def test_an_empty_data_file_is_named(tmp_path):
    from training.data import load_raw

    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    for name in ("empty.jsonl", "blank.jsonl"):
        config = _config(tmp_path, tmp_path / name, tmp_path / name)
        with pytest.raises(ConfigError, match=f"data.train_files: .*{name} is empty; it needs prompt/response rows"):
            load_raw(config.data, 0)


def test_truncation_keeps_over_long_pairs_and_counts_them(tmp_path):
    from transformers import AutoTokenizer  # noqa: F401

    from training.data import load_raw, tokenize

    from .text_helpers import word_tokenizer

    rows = [{"prompt": "w1 " * 20, "response": "w2 " * 20}, {"prompt": "w1 w2", "response": "w2 w1"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = word_tokenizer()
    for truncate, kept, truncated in (("false", 1, 0), ("true", 2, 1)):
        config = _config(tmp_path, tmp_path / "train.jsonl", tmp_path / "train.jsonl", "--data.truncate", truncate)
        train, _ = load_raw(config.data, 0)
        ds, report = tokenize(train, tok, config.data, 10, 10, "train")
        assert len(ds) == kept and report.truncated == truncated
        assert all(len(r) <= 10 for r in ds["response_ids"])
