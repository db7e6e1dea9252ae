"""Training with --push_to_hub: the Hub is checked before any work, the model uploaded at the end, and a failed
upload keeps the trained model and says where it is (the Hub is a local stand-in, tests/fake_hub.py)."""

import pytest

from diffusion_lm.text.pipeline import DiffusionLMPipeline
from training.config import ConfigError

from .fake_hub import FakeHub
from .test_training import run


def test_push_to_hub_at_the_end(data, tmp_path, monkeypatch):
    """The login is checked with the Hub before training; the trained model is uploaded with its card's numbers."""
    hub = FakeHub().install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    result = run(data, tmp_path / "run", "--push_to_hub", "me/tiny-run", "--optim.max_steps", "4")
    assert "me/tiny-run" in result["hub_commit"]
    paths = [path for _, path in hub.requests]
    assert "/api/whoami-v2" in paths and paths.index("/api/whoami-v2") < paths.index("/api/repos/create")
    pushed = hub.write_to(tmp_path / "pushed")
    loaded = DiffusionLMPipeline.from_pretrained(pushed)
    assert loaded(["w1 w2"], num_steps=2) == DiffusionLMPipeline.from_pretrained(tmp_path / "run" / "model")(
        ["w1 w2"], num_steps=2)
    assert "| effective_batch_size | `16` |" in (pushed / "README.md").read_text()


@pytest.mark.parametrize("offline", [False, True])
def test_push_to_hub_without_a_login_or_a_network_fails_before_training(data, tmp_path, monkeypatch, offline):
    hub = FakeHub(offline=offline).install(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token either
    if offline:
        monkeypatch.setenv("HF_TOKEN", "hf_test")
    message = "the Hugging Face Hub is not reachable" if offline else "needs a login: log in with `huggingface-cli"
    with pytest.raises(ConfigError, match=f"--push_to_hub me/tiny-run: .*{message}.*Nothing was trained"):
        run(data, tmp_path / "run", "--push_to_hub", "me/tiny-run")
    assert not (tmp_path / "run").exists(), "nothing was trained or written"
    assert ("/api/whoami-v2" in [path for _, path in hub.requests]) == offline


def test_a_push_that_fails_at_the_end_keeps_the_model_and_says_where(data, tmp_path, monkeypatch, caplog):
    hub = FakeHub().install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    original = hub.handle

    def network_gone_after_the_check(request):
        if request.url.path != "/api/whoami-v2":
            hub.offline = True
        return original(request)

    hub.handle = network_gone_after_the_check
    with caplog.at_level("ERROR"):
        result = run(data, tmp_path / "run", "--push_to_hub", "me/tiny-run", "--optim.max_steps", "4")
    assert "not reachable" in result["hub_error"] and (tmp_path / "run" / "model" / "model.safetensors").exists()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"The trained model is saved in {tmp_path / 'run' / 'model'}" in logged
    assert f"huggingface-cli upload me/tiny-run {tmp_path / 'run' / 'model'}" in logged
