"""The rollout viewer (inference.app): per-step rounded estimates, their rendering, and the app in a real browser."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffusion_lm.text.pipeline import DiffusionLMPipeline
from inference.app import APP_FIXED, Trace, form_fields, form_settings, render_steps, rollout_trace, watch

from .text_helpers import tiny_model

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "w1 w2 w3"


@pytest.fixture(scope="module")
def pipe():
    return DiffusionLMPipeline(*tiny_model(seed=2, length_prediction=False))  # a random length head may pick n = 0


def test_trace_has_a_view_per_step_and_ends_at_the_returned_text(pipe):
    trace = rollout_trace(pipe, PROMPT, num_steps=6, method="ddim", eta=1.0, seed=4)
    assert [v.i for v in trace.steps] == list(range(6))
    assert trace.text == pipe(PROMPT, num_steps=6, method="ddim", eta=1.0, seed=4)[0], "watching changed the rollout"
    last = [tok for tok in trace.steps[-1].tokens if tok]
    assert " ".join(last) == trace.text, "the last step's rounded estimate is the response"
    times = [v.t for v in trace.steps]
    assert times == sorted(times, reverse=True) and times[0] < 1.0


def test_a_length_conditioned_trace_ends_at_the_returned_text():
    pipe = DiffusionLMPipeline(*tiny_model(seed=3))
    trace = rollout_trace(pipe, PROMPT, num_steps=5, seed=2)
    assert trace.text == pipe(PROMPT, num_steps=5, seed=2, length_candidates=1)[0]
    assert " ".join(tok for tok in trace.steps[-1].tokens if tok) == trace.text


def test_changed_marks_exactly_the_tokens_that_differ_from_the_step_before(pipe):
    trace = rollout_trace(pipe, PROMPT, num_steps=8, method="ddim", eta=1.0, seed=1)
    assert all(trace.steps[0].changed)
    for before, view in zip(trace.steps, trace.steps[1:]):
        assert view.changed == [a != b for a, b in zip(view.tokens, before.tokens)]
    assert any(any(v.changed) for v in trace.steps[1:]), "a random model's estimate should move at some step"


def test_watch_streams_the_same_rollout_step_by_step(pipe):
    seen = [(len(t.steps), t.text) for t in watch(pipe, PROMPT, num_steps=5, seed=7)]
    assert [n for n, _ in seen] == [1, 2, 3, 4, 5, 5]
    assert all(text == "" for _, text in seen[:-1])
    assert seen[-1][1] == rollout_trace(pipe, PROMPT, num_steps=5, seed=7).text


def test_the_form_has_a_widget_for_every_generation_setting_but_the_watched_rollouts_own():
    from diffusion_lm.text.generation_config import GenerationConfig

    assert form_fields() == [n for n in GenerationConfig.names() if n not in APP_FIXED]
    assert set(APP_FIXED) == {"num_samples", "mbr", "length_candidates", "length_candidate_ratio"}


@pytest.mark.parametrize("method", ["ddim", "dpm_solver++", "unipc", "ddpm"])
def test_every_sampler_in_the_form_runs_with_the_form_defaults(pipe, method):
    defaults = {name: getattr(pipe.generation_config, name) for name in form_fields()}
    values = {**defaults, "method": method, "num_steps": 3.0, "grid": "model default", "order": None}
    call = form_settings(values, 0, "  ")
    assert "response_template" not in call and "grid" not in call and "order" not in call
    assert call["num_steps"] == 3 and isinstance(call["num_steps"], int) and call["method"] == method
    trace = rollout_trace(pipe, PROMPT, **call)
    assert len(trace.steps) == 3 and trace.text == pipe(PROMPT, length_candidates=1, **call)[0]


def test_form_template_and_truncation_reach_the_rollout(pipe):
    call = form_settings({"method": "ddim", "num_steps": 4}, 0, "w7 [FILL:2] w9", truncation=True)
    assert call["truncation"] is True
    trace = rollout_trace(pipe, PROMPT, **call)
    assert [tok for tok in trace.steps[-1].tokens if tok][0] == "w7" and trace.text.split()[0] == "w7"
    long = " ".join(f"w{i}" for i in range(12))
    assert rollout_trace(pipe, long, **call).text == rollout_trace(pipe, " ".join(long.split()[:8]), **call).text


def test_watch_raises_the_pipeline_error(pipe):
    with pytest.raises(ValueError, match="empty"):
        list(watch(pipe, "   ", num_steps=2))


def test_render_has_a_row_per_step_highlights_changes_and_escapes_text(pipe):
    trace = rollout_trace(pipe, PROMPT, num_steps=4, seed=0)
    page = render_steps(trace)
    assert page.count('<tr class="dlm-step">') == 4
    changed = sum(c for v in trace.steps for tok, c in zip(v.tokens, v.changed) if tok)
    assert page.count("dlm-changed") - 1 == changed  # minus the style rule
    trace.steps[0].tokens[0] = "<b>"
    assert "&lt;b&gt;" in render_steps(trace) and "<b>" not in render_steps(trace).split("</style>")[1]
    assert "no steps yet" in render_steps(Trace())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_app_in_a_headless_browser_shows_the_steps_and_the_response(pipe, tmp_path):
    """The app as a user meets it: the card's example prompts, a widget per setting, the step table and the response;
    the classifier's classes to choose from; an over-long prompt answered in the page (no traceback in the terminal)
    with the fix the form offers, and the truncation switch that applies it."""
    pytest.importorskip("gradio")
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from diffusion_lm.text.classifier import ResponseClassifier, ResponseClassifierConfig, base_fingerprint

    cfg = pipe.model.config
    ResponseClassifier(ResponseClassifierConfig(
        class_names=["long", "short"], embedding_dim=cfg.embedding_dim, max_prompt_length=cfg.max_prompt_length,
        max_response_length=cfg.max_response_length, hidden_size=16, num_layers=1, num_heads=2,
        base_fingerprint=base_fingerprint(pipe.model))).save_pretrained(tmp_path / "clf")
    pipe.card["examples"] = ["w4 w5 w6", "w7 w8"]
    pipe.save_pretrained(tmp_path / "model")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "inference.app", "--model", str(tmp_path / "model"),
                               "--classifier", str(tmp_path / "clf"), "--port", str(port)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,2000"):
        options.add_argument(flag)
    browser = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "the app exited before serving"
                assert time.time() < deadline, "the app did not start serving within 120 s"
                time.sleep(0.5)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 90)
        box = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea")))
        page = browser.page_source
        assert "w4 w5 w6" in page and "w7 w8" in page, "the card's example prompts are offered"
        for name in form_fields():
            assert browser.find_elements(By.CSS_SELECTOR, f"#setting-{name}"), f"no widget for {name}"
        chooser = browser.find_element(By.CSS_SELECTOR, "#clf-class input")
        assert chooser.get_attribute("value") == "long", "the classifier's first class is chosen"
        chooser.click()
        offered = wait.until(lambda b: [e.text.split("\n")[-1]
                                        for e in b.find_elements(By.CSS_SELECTOR, "#clf-class ul li")] or None)
        assert offered == ["long", "short"], offered
        chooser.click()
        box.send_keys(PROMPT)
        browser.find_element(By.CSS_SELECTOR, "#generate").click()
        steps = pipe.generation_config.num_steps
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#steps tr.dlm-step")) == steps)
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#response textarea").get_attribute("value") != "")
        shown = browser.find_element(By.CSS_SELECTOR, "#response textarea").get_attribute("value")
        assert shown == pipe(PROMPT, length_candidates=1)[0], "the browser shows the pipeline's response"
        if os.environ.get("DIFFUSION_LM_APP_SCREENSHOT"):
            browser.save_screenshot(os.environ["DIFFUSION_LM_APP_SCREENSHOT"])
        box.clear()
        box.send_keys(" ".join(f"w{i % 20}" for i in range(12)))  # longer than the model's 8 prompt slots
        browser.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda b: "Truncate long prompts" in b.find_element(By.TAG_NAME, "body").text)
        assert "truncation=True" not in browser.find_element(By.TAG_NAME, "body").text
        browser.find_element(By.CSS_SELECTOR, "#truncation input").click()
        browser.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#steps tr.dlm-step")) == steps)
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text(), "a user's error printed a traceback"
