"""Training with accelerate: configs, data sources and bad rows, resume, crash safety, EMA, outputs."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffusion_lm.text.pipeline import DiffusionLMPipeline
from training.config import ConfigError, load_config
from training.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def _kill_after(proc: subprocess.Popen, seconds: float) -> None:
    """Kill ``proc`` if it still runs after ``seconds`` (a daemon timer: it never holds the test run)."""
    timer = threading.Timer(seconds, proc.kill)
    timer.daemon = True
    timer.start()


def _overrides(data, out, *extra) -> list[str]:
    return ["--output_dir", str(out), "--data.train_files", f"[{data / 'train.jsonl'}]",
            "--data.validation_files", f"[{data / 'validation.jsonl'}]", "--optim.max_steps", "12",
            "--optim.warmup_steps", "2",
            "--optim.batch_size", "16", "--eval.every", "6", "--eval.generate", "8", "--generation.num_steps", "3",
            "--checkpoint.every", "6", "--log_every", "2", *extra]


def run(data, out, *extra, **kwargs):
    from accelerate.state import AcceleratorState

    try:
        return train(load_config(TINY, _overrides(data, out, *extra)), **kwargs)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def _weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("extra,message", [
    (["--optim.lr", "-1"], "optim.lr must be > 0"),
    (["--optim.lrate", "1"], "unknown key optim.lrate"),
    (["--model.max_response_length", "0"], "max_response_length must be > 0"),
    (["--optim.batch_size", "eight"], "optim.batch_size must be an integer"),
    (["--model.self_conditioning", "maybe"], "model.self_conditioning must be true or false"),
    (["--data.validation_fraction", "1.5"], r"validation_fraction must lie in \(0, 1\)"),
    (["--generation.method", "beam"], "generation: unknown method 'beam'"),
    (["--generation.speed", "1"], "unknown key generation.speed"),
    (["--model.x0_parametrisation", "direct"], "unknown key model.x0_parametrisation"),
    (["--banana", "1"], "unknown key banana"),
    (["--objective.lamda_x0", "1"],
     "unknown key objective.lamda_x0 in objective; valid keys: hold_length, lambda_round, lambda_x0"),
    (["--objective.prompt_dropout", "1.5"], r"objective: prompt_dropout must lie in \[0, 1\)"),
    (["--objective.t_eps", "soon"], "objective.t_eps must be a number"),
    (["--model.prompt_dropout", "0.1"], "model.prompt_dropout belongs to the training objective now: set "
                                        "objective.prompt_dropout instead"),
    (["--model.x0_parameterization", "direct"], "model.x0_parameterization='direct': x0_parameterization was an "
                                                "option of diffusion-lm 0.1 that was measured and removed"),
])
def test_bad_config_is_an_error_before_any_work(data, tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, _overrides(data, tmp_path, *extra))


def test_command_line_reports_config_errors(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "training.train", "--config", str(TINY), "--optim.lr", "-3",
                             "--output_dir", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2 and "config error: optim.lr must be > 0" in result.stderr
    assert not out.exists(), "a refused config must not start any work"


def test_every_config_in_configs_loads():
    """Every shipped config loads, and what its YAML says reaches the model, objective and generation configs
    (a key silently dropped or renamed on the way fails here)."""
    import yaml

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        config = load_config(path)
        model, generation = config.model_config(), config.generation_config()
        for key, value in (raw.get("model") or {}).items():
            assert getattr(model, key) == value, (path.name, key)
        for key, value in (raw.get("objective") or {}).items():
            assert getattr(model.training_objective, key) == value, (path.name, key)
        for key, value in (raw.get("generation") or {}).items():
            assert getattr(generation, key) == value, (path.name, key)
        for section in ("optim", "eval", "checkpoint"):
            for key, value in (raw.get(section) or {}).items():
                assert getattr(getattr(config, section), key) == value, (path.name, section, key)


# ----------------------------------------------------------------------------- data


def test_jsonl_trains_and_writes_everything(data, tmp_path):
    result = run(data, tmp_path)
    assert result["step"] == 12 and {"val_loss", "bleu", "chrf", "exact_match", "copy_bleu"} <= set(result)
    for name in ("metrics.jsonl", "curves.png", "model/model.safetensors", "model/README.md",
                 "tokenizer/tokenizer.json"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path).rglob("events.out.tfevents*")), "tensorboard logs"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6, 8, 10, 12]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-12", "step-6"]
    pipe = DiffusionLMPipeline.from_pretrained(tmp_path / "model")
    assert len(pipe(["w1 w2 w3"], num_steps=3)) == 1
    card = (tmp_path / "model" / "README.md").read_text()
    assert "| bleu |" in card and "| steps | `12` |" in card
    assert pipe.generation_config == load_config(TINY, _overrides(data, tmp_path)).generation_config()


def test_saved_model_generates_as_evaluation_did(data, tmp_path):
    run(data, tmp_path, "--generation.clamp", "true", "--generation.log_snr_offset", "1.5")
    saved = DiffusionLMPipeline.from_pretrained(tmp_path / "model").generation_config
    assert saved.clamp is True and saved.log_snr_offset == 1.5 and saved.num_steps == 3


def test_csv_and_datasets_dataset_train(data, tmp_path):
    import datasets

    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    csv = tmp_path / "train.csv"
    datasets.Dataset.from_list(rows).to_csv(csv)
    assert run(data, tmp_path / "csv", "--data.dataset", "csv", "--data.train_files", f"[{csv}]",
               "--data.validation_files", "null")["step"] == 12
    assert run(data, tmp_path / "ds", train_dataset=datasets.Dataset.from_list(rows))["step"] == 12


def test_streaming_trains(data, tmp_path):
    assert run(data, tmp_path, "--data.streaming", "true", "--data.validation_files", "null",
               "--data.validation_size", "32")["step"] == 12


def test_bad_rows_are_counted_and_skipped_or_refused(data, tmp_path, caplog):
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()][:600]
    bad = rows + [{"prompt": "w1 w2"}, {"prompt": "w1", "response": "   "}, {"prompt": "w1 " * 40, "response": "w2"},
                  {"prompt": None, "response": "w3"}]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bad))
    with caplog.at_level("WARNING"):
        result = run(data, tmp_path / "lenient", "--data.train_files", f"[{path}]")
    assert result["step"] == 12
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "train: skipped 4 of 604 rows" in message and "2 with a missing prompt or response field" in message
    assert ("1 with an empty prompt or response" in message
            and "1 with a prompt or response longer than the model's slots" in message)
    assert message.count("skipped 4 of 604 rows") == 1, "the report is logged once"
    with pytest.raises(ConfigError, match="train: 4 of 604 rows are unusable and data.strict is on: 2 with a missing "
                                          ".*Nothing was trained; clean the data, or set data.strict false"):
        run(data, tmp_path / "strict", "--data.train_files", f"[{path}]", "--data.strict", "true")
    strict = _overrides(data, tmp_path / "cli", "--data.train_files", f"[{path}]", "--data.strict", "true")
    cli = subprocess.run([sys.executable, "-m", "training.train", "--config", str(TINY), *strict], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert cli.returncode == 2 and "config error: train: 4 of 604 rows are unusable" in cli.stderr, cli.stderr[-2000:]
    assert "Traceback" not in cli.stderr


def test_missing_column_names_the_fix(data, tmp_path):
    with pytest.raises(ConfigError, match="no response column 'answer'; set data.response_field to one of"):
        run(data, tmp_path, "--data.response_field", "answer")


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "sentencepiece"])
def test_tokenizer_kinds_train(data, tmp_path, kind):
    result = run(data, tmp_path, "--tokenizer.train", f"{{kind: {kind}, vocab_size: 60}}", "--optim.max_steps", "4")
    assert result["step"] == 4
    assert DiffusionLMPipeline.from_pretrained(tmp_path / "model").tokenizer.pad_token == "[PAD]"


# ----------------------------------------------------------------------------- resume and crashes


def test_a_rerun_into_a_previous_runs_folder_says_so(data, tmp_path, caplog):
    run(data, tmp_path, "--optim.max_steps", "2", "--eval.every", "2", "--checkpoint.every", "2")
    with caplog.at_level("WARNING"):
        run(data, tmp_path, "--optim.max_steps", "2", "--eval.every", "2", "--checkpoint.every", "2")
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "holds a previous run (checkpoints up to step-2 and a saved model)" in message
    assert "--resume_from_checkpoint latest" in message


def test_num_threads_sets_torchs_cpu_threads(data, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run(data, tmp_path, "--optim.max_steps", "1", "--eval.every", "1", "--eval.generate", "0", "--num_threads", "2")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_stopped_and_resumed_run_matches_an_uninterrupted_one(data, tmp_path):
    full = run(data, tmp_path / "full", "--model.self_conditioning", "true", "--objective.prompt_dropout", "0.2")
    stopped = run(data, tmp_path / "split", "--model.self_conditioning", "true", "--objective.prompt_dropout", "0.2",
                  "--stop_at_step", "6")
    assert stopped == {"stopped_at": 6}
    resumed = run(data, tmp_path / "split", "--model.self_conditioning", "true", "--objective.prompt_dropout", "0.2",
                  "--checkpoint.resume_from_checkpoint", "latest")
    a, b = _weights(tmp_path / "full" / "model"), _weights(tmp_path / "split" / "model")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    rows = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    for x, y in zip(rows(tmp_path / "full"), rows(tmp_path / "split"), strict=True):
        assert x["step"] == y["step"]
        for key in ("loss", "val_loss", "bleu"):
            if key in x:
                assert abs(x[key] - y[key]) < 1e-6, (key, x, y)
    assert resumed["loss"] == pytest.approx(full["loss"], abs=1e-6)


# a minute of launching and killing; test_sigterm_checkpoints_and_exits keeps a kill in the default run
@pytest.mark.slow
def test_kill_during_a_checkpoint_save_resumes_from_the_previous_good_one(data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tests.probed_train", "--slow-save", "60", "--", "--config", str(TINY),
           *_overrides(data, out, "--checkpoint.every", "4")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _kill_after(proc, 300)  # reading its output never blocks past the timeout
    saves = 0
    try:
        for line in proc.stdout:  # the first save of step 4 is slowed too: let it pass, kill during step 8's
            if "checkpoint: writing" in line:
                saves += 1
                if saves == 1:
                    continue
                time.sleep(0.5)
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    root = out / "checkpoints"
    assert (root / ".tmp-step-8").exists() and (root / "latest").read_text() == "step-4"
    resumed = run(data, out, "--checkpoint.every", "4", "--checkpoint.resume_from_checkpoint", "latest")
    assert resumed["step"] == 12
    assert not (root / ".tmp-step-8").exists() and (root / "latest").read_text() == "step-12"


def test_sigterm_checkpoints_and_exits(data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "training.train", "--config", str(TINY),
           *_overrides(data, out, "--optim.max_steps", "100000")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _kill_after(proc, 300)  # reading its output never blocks past the timeout
    for line in proc.stdout:
        if "step 6:" in line:  # the first evaluation has run
            proc.send_signal(signal.SIGTERM)
            break
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert "stopping after the checkpoint of step" in output
    assert (out / "checkpoints" / "latest").exists()


# ----------------------------------------------------------------------------- EMA, fine-tuning, precision


def test_saved_model_holds_the_ema_weights(data, tmp_path):
    run(data, tmp_path, "--optim.ema_decay", "0.9", "--optim.length_fit_steps", "0")  # the fit: its own test
    saved = _weights(tmp_path / "model")
    ema = load_file(tmp_path / "checkpoints" / "step-12" / "ema.safetensors")
    raw = load_file(tmp_path / "checkpoints" / "step-12" / "model.safetensors")
    for name, value in ema.items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)
    assert any(not torch.equal(raw[n], ema[n]) for n in ema), "EMA differs from the raw weights"


def test_the_length_classifier_is_fitted_alone_after_training(data, tmp_path):
    """optim.length_fit_steps: the saved model is the EMA model with its length classifier trained further on its
    own; every other weight is the EMA's, and the run reports the fit and the validation accuracy after it."""
    result = run(data, tmp_path, "--optim.ema_decay", "0.9", "--optim.length_fit_steps", "30")
    assert result["length_fit_steps"] == 30 and 0 <= result["val_length_accuracy"] <= 1
    saved = _weights(tmp_path / "model")
    ema = load_file(tmp_path / "checkpoints" / "step-12" / "ema.safetensors")
    length = [n for n in ema if n.startswith("length_predictor.")]
    assert length and all(not torch.equal(saved[n], ema[n]) for n in length if n.endswith("head.weight"))
    for name in set(ema) - set(length):
        torch.testing.assert_close(saved[name], ema[name], rtol=0, atol=0)


def test_init_from_fine_tunes_a_checkpoint(data, tmp_path):
    run(data, tmp_path / "base")
    result = run(data, tmp_path / "tuned", "--init_from", str(tmp_path / "base" / "model"), "--optim.max_steps", "4")
    assert result["step"] == 4
    base = DiffusionLMPipeline.from_pretrained(tmp_path / "base" / "model")
    tuned = DiffusionLMPipeline.from_pretrained(tmp_path / "tuned" / "model")
    assert base.model.config.tokenizer_fingerprint == tuned.model.config.tokenizer_fingerprint
    assert torch.equal(base.model.embedding_table, tuned.model.embedding_table)


def test_bf16_mixed_precision_trains_on_cpu(data, tmp_path, monkeypatch):
    """--mixed_precision bf16: the training forward runs under CPU autocast in bfloat16 (the denoiser's matmuls come
    out in bf16), the loss stays finite, and the saved weights keep full precision."""
    from diffusion_lm.text.network import DiffusionTransformer

    seen, forward = [], DiffusionTransformer.forward

    def recording(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        seen.append((self.training, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), out.dtype))
        return out

    monkeypatch.setattr(DiffusionTransformer, "forward", recording)
    result = run(data, tmp_path, "--mixed_precision", "bf16", "--optim.max_steps", "4", "--log_every", "1")
    training = [s for s in seen if s[0]]
    assert training and all(on and dtype == torch.bfloat16 and out == torch.bfloat16 for _, on, dtype, out in training)
    assert result["step"] == 4 and math.isfinite(result["loss"])
    assert not any(v.dtype == torch.bfloat16 for v in _weights(tmp_path / "model").values()), "saved weights in bf16"


def test_two_processes_train_one_model_data_parallel(data, tmp_path):
    """configs/accelerate/multi_cpu.yaml: two ranks in one gloo group, each drawing its own rows, with identical
    weights after every step (gradients all-reduced), an effective batch of 2 x 8, and a model that generates."""
    out, trace = tmp_path / "ddp", tmp_path / "trace"
    cmd = [sys.executable, "-m", "accelerate.commands.launch",
           "--config_file", str(ROOT / "configs" / "accelerate" / "multi_cpu.yaml"),
           "-m", "tests.probed_train", "--trace", str(trace), "--", "--config", str(TINY),
           *_overrides(data, out, "--optim.max_steps", "4", "--optim.batch_size", "8",
                       "--optim.length_fit_steps", "0")]  # the fit after training runs on rank 0 alone
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logs = {int(p.stem.split("-")[1]): [json.loads(line) for line in p.read_text().splitlines()]
            for p in trace.glob("rank-*.jsonl")}
    assert sorted(logs) == [0, 1], f"expected two ranks, got {sorted(logs)}"
    for rank, records in logs.items():
        assert [r["step"] for r in records] == [1, 2, 3, 4]
        assert all(r["world_size"] == 2 and r["distributed_type"].endswith("MULTI_CPU") for r in records)
    for a, b in zip(logs[0], logs[1]):
        assert len(a["rows"]) == len(b["rows"]) == 8
        assert not set(a["rows"]) & set(b["rows"]), f"step {a['step']}: both ranks drew the same rows"
        assert a["weights"] == b["weights"], f"step {a['step']}: the ranks' weights differ (no gradient all-reduce)"
    assert logs[0][0]["weights"] != logs[0][-1]["weights"], "the weights never changed"
    card = (out / "model" / "README.md").read_text()
    assert "| effective_batch_size | `16` |" in card and "| processes | `2` |" in card
    output = result.stdout + result.stderr
    assert "world size 2 (MULTI_CPU): per-process batch 8 x 1 accumulation step x 2 processes = effective batch 16" \
        in output
    assert result.stdout.count("'model_dir'") == 1, "one final report, not one per rank"
    pipe = DiffusionLMPipeline.from_pretrained(out / "model")
    assert len(pipe(["w1 w2 w3", "w4"], num_steps=3)) == 2


def test_minilm_config_trains_with_the_encoders_table_and_tokenizer(data, tmp_path):
    """configs/minilm.yaml's model, shrunk: MiniLM's 30522 x 384 table and its WordPiece tokenizer."""
    from accelerate.state import AcceleratorState

    overrides = _overrides(data, tmp_path, "--optim.max_steps", "2", "--optim.batch_size", "4",
                           "--model.hidden_size", "32",
                           "--model.num_layers", "1", "--model.num_heads", "2", "--model.max_prompt_length", "16",
                           "--model.max_response_length", "16", "--eval.generate", "2", "--eval.loss_batches", "1")
    try:
        result = train(load_config(ROOT / "configs" / "minilm.yaml", overrides))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert result["step"] == 2
    pipe = DiffusionLMPipeline.from_pretrained(tmp_path / "model")
    assert pipe.model.config.vocab_size == 30522 and pipe.model.config.embedding_dim == 384
    assert pipe.tokenizer("hello world", add_special_tokens=False)["input_ids"] == [7592, 2088]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "wordlevel"])
def test_a_trained_tokenizer_numbers_its_pieces_by_the_pieces_alone(kind):
    """The ids pick the frozen table's rows. The trainers of ``tokenizers`` number their pieces in hash-map order,
    which changes between trainings on the same text; ours number them specials first, then sorted, so the same
    pieces always get the same ids (the pieces themselves can still differ where merges tie)."""
    from diffusion_lm import train_tokenizer
    from diffusion_lm.text.synthetic import synthetic_pairs

    texts = [t for pair in synthetic_pairs(300, "reverse", vocab=40, seed=0) for t in pair]
    texts += ["the shepherd's sheep; shepherding, sheepfolds and shepherdesses"] * 3
    vocab = train_tokenizer(texts, kind, 2000, False).get_vocab()
    pieces = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert pieces[:2] == ["[PAD]", "[UNK]"]
    assert pieces[2:] == sorted(pieces[2:])


def test_the_end_of_training_names_the_command_that_makes_the_default_call_fast():
    """A model trained on local JSON lines is told how to distil it (D2); one trained on a Hub dataset is not told a
    command whose --data it could not fill."""
    from diffusion_lm.training.config import load_config
    from diffusion_lm.training.train import distill_hint

    g2p = Path(__file__).resolve().parents[1] / "configs" / "g2p.yaml"
    config = load_config(g2p, [])
    hint = distill_hint(config, {"model_dir": "runs/g2p/model"})
    assert ("python -m training.distill --teacher runs/g2p/model --data data/generated/g2p/train.jsonl "
            "--out runs/g2p/fast") in hint
    hub = load_config(g2p, ["--data.dataset", "someone/pairs", "--data.train_files", "null"])
    assert distill_hint(hub, {"model_dir": "runs/g2p/model"}) is None
    assert distill_hint(config, {}) is None  # nothing saved, nothing to distil
