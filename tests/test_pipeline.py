"""DiffusionLMPipeline: generation options, reproducibility, save/load/push, MBR, bad input."""

import json
import subprocess
import sys

import pytest
import torch

from diffusion_lm import DiffusionLMConfig, build_model, train_tokenizer
from diffusion_lm.text.generation_config import GenerationConfig
from diffusion_lm.text.mbr import mbr_select
from diffusion_lm.text.pipeline import DiffusionLMPipeline

from .fake_hub import FakeHub
from .text_helpers import tiny_model

PROMPTS = ["w1 w2 w3", "w4 w5", "w9 w8 w7 w6"]


@pytest.fixture(scope="module")
def pipe():
    return DiffusionLMPipeline(*tiny_model(self_conditioning=True, objective={"prompt_dropout": 0.1}))


@pytest.mark.parametrize("method", ["ddim", "dpm_solver++", "unipc", "ddpm", "dpm_solver"])
def test_every_sampler_generates_reproducibly(pipe, method):
    a = pipe(PROMPTS, num_steps=4, method=method, seed=3)
    assert len(a) == 3 and all(isinstance(s, str) for s in a)
    assert pipe(PROMPTS, num_steps=4, method=method, seed=3) == a


def test_save_load_generate_gives_identical_strings(pipe, tmp_path):
    before = pipe(PROMPTS, num_steps=5, method="ddim", eta=0.5, seed=11)
    pipe.save_pretrained(tmp_path / "ckpt", metrics={"bleu": 12.5}, training={"steps": 10})
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"]
    card = (tmp_path / "ckpt" / "README.md").read_text()
    assert ("library_name: diffusion-lm" in card and "| bleu | 12.5 |" in card
            and "DiffusionLMPipeline.from_pretrained" in card)
    loaded = DiffusionLMPipeline.from_pretrained(tmp_path / "ckpt")
    assert loaded(PROMPTS, num_steps=5, method="ddim", eta=0.5, seed=11) == before
    assert not list(tmp_path.glob(".ckpt*")), "no staging folder left behind"


def test_nothing_is_pickled(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "ckpt")
    for f in (tmp_path / "ckpt").iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f"{f.name} looks like a pickle"
    from safetensors.torch import load_file

    assert "embedding_table" in load_file(tmp_path / "ckpt" / "model.safetensors")


def test_push_to_hub_uploads_a_loadable_folder(pipe, tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    url = pipe.push_to_hub("someone/tiny-diffusion-lm", private=True, token="hf_test")
    assert url.startswith("https://huggingface.co/someone/tiny-diffusion-lm")
    assert hub.created == [{"name": "tiny-diffusion-lm", "organization": "someone", "visibility": "private",
                            "type": "model"}]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(hub.files)
    uploaded = DiffusionLMPipeline.from_pretrained(hub.write_to(tmp_path / "uploaded"))
    assert uploaded(PROMPTS, num_steps=4, seed=2) == pipe(PROMPTS, num_steps=4, seed=2)


def test_push_to_hub_offline_names_the_hub_and_the_way_out(pipe, monkeypatch):
    from diffusion_lm.text.hub import HubError

    FakeHub(offline=True).install(monkeypatch)
    with pytest.raises(HubError, match="pushing to the Hub repository 'someone/x': the Hugging Face Hub is not "
                                       "reachable .*ConnectError.*save_pretrained\\(folder\\)"):
        pipe.push_to_hub("someone/x", token="hf_test")


def test_a_loaded_model_saved_again_keeps_its_cards_training_and_metrics(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "a", metrics={"bleu": 41.25, "exact_match": 12.5},
                         training={"steps": 600, "lr": 0.002, "train_files": ["data/train.jsonl"]})
    first = (tmp_path / "a" / "README.md").read_text()
    loaded = DiffusionLMPipeline.from_pretrained(tmp_path / "a")
    assert loaded.card == {"training": {"steps": "600", "lr": "0.002", "train_files": "['data/train.jsonl']"},
                           "metrics": {"bleu": "41.25", "exact_match": "12.5"}, "examples": []}
    loaded.save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "README.md").read_text() == first
    loaded.card["examples"] = ["w1 w2", 'say "w3"']
    loaded.save_pretrained(tmp_path / "c")
    assert DiffusionLMPipeline.from_pretrained(tmp_path / "c").card["examples"] == ["w1 w2", 'say "w3"']
    assert "pip install -e ." in first and "pip install diffusion-lm`" not in first


def test_num_samples_return_all_and_mbr(pipe):
    groups = pipe(PROMPTS[:2], num_steps=3, num_samples=4, return_all=True, seed=5)
    assert [len(g) for g in groups] == [4, 4]
    best = pipe(PROMPTS[:2], num_steps=3, num_samples=4, mbr=True, seed=5)
    assert [g[mbr_select(g)] for g in groups] == best
    assert pipe(PROMPTS[:2], num_steps=3, num_samples=4, seed=5) == [g[0] for g in groups]


def test_mbr_picks_the_consensus():
    assert mbr_select(["dogs run fast", "the cat sat on the mat", "the cat sat on a mat",
                       "the cat sat on the mat"]) == 1
    assert mbr_select(["only one"]) == 0


def test_guidance_runs_the_unconditional_branch(pipe):
    masks = []
    hook = pipe.model.denoiser.register_forward_pre_hook(lambda mod, args: masks.append(args[1].any().item()))
    try:
        pipe(PROMPTS, num_steps=3, guidance_scale=3.0)
    finally:
        hook.remove()
    assert True in masks and False in masks, "classifier-free guidance needs conditional and unconditional passes"


def test_guidance_combines_cond_and_uncond_as_62(pipe):
    from diffusion_lm.core import classifier_free
    from diffusion_lm.text.rollout import Rollout, hold_length

    ids = torch.tensor([[3, 4, 5]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    z, t = torch.randn(1, 8, 16), torch.full((1,), 0.5)
    full = torch.zeros(1, 8, dtype=torch.bool)  # the length-conditioned default model (L2), told all 8 slots are used
    rollout = Rollout(pipe.model, GenerationConfig(log_snr_offset=0.0, temperature=1.0), ids, mask,
                      lengths=torch.tensor([8]))  # the model's own estimates, as cond and uncond below
    assert torch.equal(rollout.past, full)
    held = lambda logits: hold_length(logits, full, pipe.model.config.pad_token_id)  # noqa: E731  (L2: no pad in 8 slots)
    cond = pipe.model.predict(ids, mask, z, t, past=full, edit_logits=held)[0]
    uncond = pipe.model.predict(ids, torch.zeros_like(mask), z, t, past=full, edit_logits=held)[0]
    unconditional = rollout.without_prompt()
    assert unconditional.prompt_mask.sum() == 0 and unconditional is not rollout
    guided = classifier_free(rollout, unconditional, 2.0)
    torch.testing.assert_close(guided(z, t), 3.0 * cond - 2.0 * uncond)


def _recording_predict(model, seen: list):
    """model.predict that appends (self_cond, x0_hat) of every call to ``seen``."""
    original = model.predict

    def spy(prompt_ids, prompt_mask, z, t, self_cond=None, **kwargs):
        out = original(prompt_ids, prompt_mask, z, t, self_cond, **kwargs)
        seen.append((self_cond, out[0].detach()))
        return out

    return spy


def test_self_conditioning_feeds_back_the_previous_prediction(pipe):
    """Each call gets the previous call's x0 estimate (the interpolated one the sampler used); the first gets none."""
    seen = []
    pipe.model.predict = _recording_predict(pipe.model, seen)
    try:
        pipe(["w1 w2"], num_steps=3, method="ddim", length_candidates=1)  # one rollout, no scoring passes
    finally:
        del pipe.model.predict
    assert seen[0][0] is None and len(seen) == 3
    for (_, previous_out), (self_cond, _) in zip(seen, seen[1:]):
        assert torch.equal(self_cond, previous_out)


@pytest.mark.parametrize("method", ["rk45", "heun", "dpm_solver"])
def test_self_conditioning_reads_only_accepted_steps(pipe, method):
    """Every evaluation is fed the x0_hat of the last accepted step (a Rollout's explicit state, committed by the
    sampler's per-step callback): a rejected rk45 trial, a heun predictor stage or a singlestep DPM-Solver's inner
    stage never feeds another evaluation. (The rollout is driven by the core sampler itself: rk45 and heun are
    refused by a text model's generation config, but the Rollout works under any sampler.)"""
    from diffusion_lm.core import sample
    from diffusion_lm.text.rollout import Rollout

    seen, accepted = [], []
    pipe.model.predict = _recording_predict(pipe.model, seen)
    try:
        ids = torch.tensor([[3, 4], [5, 0]])
        rollout = Rollout(pipe.model, GenerationConfig(log_snr_offset=0.0), ids, ids != 0, lengths=torch.tensor([4, 6]))

        def commit(info):
            rollout.commit()
            accepted.append(len(seen))

        z = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
        sample(rollout, z, pipe.model.schedule, method=method, steps=3, prediction="x0", callback=commit,
               **({"order": 3} if method == "dpm_solver" else {}))
    finally:
        del pipe.model.predict
    for k, (self_cond, _) in enumerate(seen):
        before = [n for n in accepted if n <= k]
        if not before:
            assert self_cond is None
        else:
            assert torch.equal(self_cond, seen[before[-1] - 1][1])
    assert len(seen) > len(accepted), "the check needs evaluations between accepted steps"
    if method == "rk45":
        assert len(seen) - 1 > 6 * len(accepted), "the check needs an rk45 run with a rejected trial"


def test_clamping_hands_the_sampler_embedding_rows(pipe):
    from diffusion_lm.text.rollout import Rollout

    model = pipe.model
    rollout = Rollout(model, GenerationConfig(clamp=True), torch.tensor([[3, 4]]), torch.ones(1, 2, dtype=torch.bool),
                      lengths=torch.tensor([5]))
    out = rollout(torch.randn(1, 8, 16), torch.full((1,), 0.7))
    table = model.embedding_table / model.config.embedding_scale
    assert torch.cdist(out[0], table).min(-1).values.max() < 1e-5
    unclamped = Rollout(model, GenerationConfig(), torch.tensor([[3, 4]]), torch.ones(1, 2, dtype=torch.bool),
                        lengths=torch.tensor([5]))(torch.randn(1, 8, 16), torch.full((1,), 0.7))
    assert torch.cdist(unclamped[0], table).min(-1).values.max() > 1e-3, "the check needs estimates off the rows"


def test_generation_config_supplies_the_defaults_and_calls_override_them(tmp_path):
    """Settings left out of a call come from generation_config.json, saved and loaded with the model."""
    model, tok = tiny_model(seed=3)
    prompts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9"]
    kwargs = dict(num_steps=4, method="ddim", seed=0)
    pipe = DiffusionLMPipeline(model, tok)
    clamped, free = pipe(prompts, clamp=True, **kwargs), pipe(prompts, clamp=False, **kwargs)
    assert clamped != free, "the check needs clamping to change this model's output"
    assert pipe(prompts, **kwargs) == free  # the default config does not clamp
    pipe.generation_config = GenerationConfig(clamp=True)
    assert pipe(prompts, **kwargs) == clamped
    assert pipe(prompts, clamp=False, **kwargs) == free
    pipe.save_pretrained(tmp_path / "m")
    back = DiffusionLMPipeline.from_pretrained(tmp_path / "m")
    assert back.generation_config == GenerationConfig(clamp=True)
    assert back(prompts, **kwargs) == clamped


def test_checkpoints_from_before_the_generation_config_keep_their_clamp(tmp_path):
    model, tok = tiny_model(seed=3)
    DiffusionLMPipeline(model, tok).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "generation_config.json").unlink()
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["clamp_at_inference"] = True
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    assert DiffusionLMPipeline.from_pretrained(tmp_path / "m").generation_config.clamp is True


@pytest.mark.parametrize("bad, message", [(dict(num_steps=0), "num_steps"), (dict(method="magic"), "unknown method"),
                                          (dict(eta=2.0), "eta"), (dict(log_snr_offset=-1.0), "log_snr_offset"),
                                          (dict(temperature=0.0), "temperature"), (dict(num_samples=0), "num_samples"),
                                          (dict(t_end=1.0), "t_end")])
def test_generation_config_refuses_impossible_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**bad)
    with pytest.raises(ValueError, match=message):
        GenerationConfig().updated(**bad)


@pytest.mark.parametrize("method", ["heun", "euler", "euler_maruyama", "rk45", "langevin", "pc"])
def test_samplers_that_write_word_salad_on_text_are_refused_with_the_ones_to_use(pipe, method):
    from diffusion_lm.text.generation_config import text_samplers

    with pytest.raises(ValueError, match=f"method='{method}' does not hold quality on the text model .*use one of "
                                         "ddpm, ddim, dpm_solver, dpm_solver\\+\\+, unipc"):
        pipe(PROMPTS, method=method)
    assert method not in text_samplers() and "ddim" in text_samplers()


@pytest.mark.parametrize("method", ["ddim", "dpm_solver++", "unipc", "ddpm", "dpm_solver"])
def test_every_sampler_constructs_a_generation_config_and_overrides_keep_the_rest(method):
    """Every valid combination constructs; eta is DDIM's own and is not rewritten when another sampler is asked for."""
    config = GenerationConfig(method=method)
    assert config.method == method and config.eta == 1.0
    assert (GenerationConfig(num_steps=7, eta=0.3).updated(method=method)
            == GenerationConfig(num_steps=7, eta=0.3, method=method))


def test_a_wrong_setting_name_lists_the_valid_ones(pipe):
    with pytest.raises(ValueError,
                       match="unknown setting.*num_stepz.*valid.*num_steps.*length_candidates.*response_template"):
        pipe(PROMPTS, num_stepz=3)
    with pytest.raises(ValueError, match="unknown generation setting.*valid: num_steps"):
        GenerationConfig().updated(num_stepz=3)


def test_a_generation_config_passed_to_a_call_replaces_the_saved_one(pipe):
    own = GenerationConfig(num_steps=2, method="dpm_solver++")
    assert pipe(PROMPTS, own) == pipe(PROMPTS, num_steps=2, method="dpm_solver++")
    assert pipe(PROMPTS, own, num_steps=3) == pipe(PROMPTS, num_steps=3, method="dpm_solver++")
    assert pipe.generation_config == GenerationConfig(), "a call changes no saved setting"


def _seen_prompts(pipe, monkeypatch) -> list:
    """The prompt ids (B, P) of every batch the pipeline hands to generate_ids."""
    import diffusion_lm.text.pipeline as module

    seen, original = [], module.generate_ids
    monkeypatch.setattr(module, "generate_ids", lambda model, batch, *a, **k: seen.append(batch.prompt_ids) or original(
        model, batch, *a, **k))
    return seen


def test_out_of_vocabulary_text_goes_through_unk(pipe, monkeypatch):
    """Words the tokenizer does not know reach the model as [UNK]: two different unknown words give the same prompt
    and the same response."""
    seen = _seen_prompts(pipe, monkeypatch)
    first, second = (pipe([p], num_steps=2, seed=1, length=6) for p in ("w1 zzzz w2", "w1 qqq w2"))
    assert seen[0][0, 1] == pipe.tokenizer.unk_token_id and torch.equal(seen[0], seen[1])
    assert first == second


@pytest.mark.parametrize(
    "prompts,kwargs,message",
    [
        ([], {}, "non-empty list of strings"),
        (["w1", ""], {}, "prompt 1 is empty"),
        (["w1", 7], {}, "prompt 1 is a int, not a string"),
        (["w1 " * 9], {}, "has 9 tokens but the model takes at most 8; shorten it or pass truncation=True"),
        (["w1"], {"num_steps": 0}, "num_steps must be an integer >= 1"),
        (["w1"], {"num_samples": 0}, "num_samples must be an integer >= 1"),
        (["w1"], {"method": "beam"}, "unknown method 'beam'"),
        (["w1"], {"eta": 2.0}, r"eta must lie in \[0, 1\]"),
    ],
)
def test_bad_input(pipe, prompts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(prompts, **kwargs)


def test_truncation_when_asked(pipe, monkeypatch):
    """truncation=True hands the model a long prompt's first max_prompt_length tokens; without it, an error."""
    seen = _seen_prompts(pipe, monkeypatch)
    long = " ".join(f"w{i}" for i in range(12))
    cut = " ".join(f"w{i}" for i in range(8))
    call = dict(num_steps=2, seed=2, length=6)
    assert pipe([long], truncation=True, **call) == pipe([cut], **call)
    assert torch.equal(seen[0], seen[1]) and seen[0].shape == (1, 8)
    assert seen[0][0].tolist() == pipe.tokenizer(cut, add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="pass truncation=True"):
        pipe([long], **call)


def test_guidance_without_prompt_dropout_is_refused():
    plain = DiffusionLMPipeline(*tiny_model())
    with pytest.raises(ValueError, match="trained without prompt dropout"):
        plain(["w1"], num_steps=2, guidance_scale=2.0)


def test_mismatched_tokenizer_or_table_is_refused(pipe, tmp_path):
    other_tok = train_tokenizer(["completely different words here"] * 2, kind="wordlevel", vocab_size=64)
    with pytest.raises(ValueError, match="tokenizer does not match the checkpoint's embedding table"):
        DiffusionLMPipeline(pipe.model, other_tok)
    pipe.save_pretrained(tmp_path / "a")
    other_tok.save_pretrained(tmp_path / "a")  # a checkpoint whose tokenizer was swapped
    with pytest.raises(ValueError, match="load the tokenizer saved with the checkpoint"):
        DiffusionLMPipeline.from_pretrained(tmp_path / "a")
    with pytest.raises(ValueError, match=r"embedding table has shape \(3, 4\)"):
        type(pipe.model)(pipe.model.config, torch.zeros(3, 4))


def test_random_table_needs_a_tokenizer():
    with pytest.raises(ValueError, match="needs a tokenizer"):
        build_model(DiffusionLMConfig())


def test_generate_command_line(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "ckpt")
    inp = tmp_path / "in.jsonl"
    extra = [{"response": "the reference"}, {"response": "old", "reference": "kept"}, {}]
    inp.write_text("\n".join(json.dumps({"prompt": p, **more}) for p, more in zip(PROMPTS, extra)) + "\n")
    out = tmp_path / "out.jsonl"
    run = lambda *args: subprocess.run([sys.executable, "-m", "inference.generate", "--model", str(tmp_path / "ckpt"),
                                        *args],
                                       capture_output=True, text=True, timeout=300)
    result = run("--input", str(inp), "--output", str(out), "--num-steps", "3", "--seed", "4")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == PROMPTS
    assert [r["response"] for r in rows] == pipe(PROMPTS, num_steps=3, seed=4)
    assert [r.get("reference") for r in rows] == ["the reference", "kept", None]
    assert "1 input rows had a 'response' field; it is kept as 'reference'" in result.stderr
    assert "1 input rows had both 'response' and 'reference'; their 'response' is replaced" in result.stderr
    # the rest in-process: the same main() the command runs (its start-up, above, costs seconds per call)
    from inference.generate import main

    def call(*args):
        code = main(["--model", str(tmp_path / "ckpt"), *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = call("--prompt", "w1 w2 w3", "--num-steps", "3", "--seed", "4")
    assert code == 0 and out.strip() == pipe(["w1 w2 w3"], num_steps=3, seed=4)[0]
    code, _, err = call("--prompt", "", "--num-steps", "3")
    assert code != 0 and "prompt 0 is empty" in err
    code, out, _ = call("--prompt", "w1 w2 w3", "--num-steps", "3", "--length", "5", "--length-candidates", "1")
    assert code == 0 and len(out.split()) == 5
    code, out, err = call("--prompt", "w1 w2 w3", "--method", "dpm_solver++", "--num-steps", "3", "--order", "3",
                          "--grid", "time", "--no-block-adjacent-repeats", "--t-end", "0.01")
    want = pipe(["w1 w2 w3"], method="dpm_solver++", num_steps=3, order=3, grid="time", block_adjacent_repeats=False,
                t_end=0.01)[0]
    assert code == 0 and out.strip() == want, err


def test_the_command_line_has_a_flag_for_every_generation_setting():
    from inference.generate import parse_args

    args = parse_args(["--model", "m", "--prompt", "p"])
    assert all(getattr(args, name) is None for name in GenerationConfig.names())
    help_text = subprocess.run([sys.executable, "-m", "inference.generate", "--help"], capture_output=True, text=True,
                               timeout=120).stdout
    for name in GenerationConfig.names():
        assert "--" + name.replace("_", "-") in help_text, name
