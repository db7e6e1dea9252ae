"""Watch a response form: a Gradio app that shows the rounded x0 estimate after every sampler step.

    pip install "diffusion-lm[app]"
    python -m inference.app --model PATH [--classifier CLF_PATH] [--port 7860]

Type a prompt, pick the sampler settings (method, steps, eta, guidance, clamp, seed), optionally a response
template with ``[FILL]`` slots or a classifier control, and press Generate: the table fills in step by step,
each row the response the model would give if the rollout stopped there (its x0 estimate rounded (121)),
tokens that changed since the previous step highlighted. A collapsing rollout is visible at a glance:
rows that stop changing early and then fill with repeated or stray tokens.

The rollout logic (``rollout_trace``, ``watch``, ``render_steps``) needs no Gradio; ``build_app`` does.
"""

from __future__ import annotations

import argparse
import html
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffusion_lm.core.sampling import METHODS
from diffusion_lm.text.rollout import hold


@dataclass
class StepView:
    """One sampler step as the user sees it: the rounded x0 estimate, token by token."""

    i: int
    t: float
    tokens: list[str]
    changed: list[bool]


@dataclass
class Trace:
    """Every step's view of one prompt's rollout, and the final response text."""

    steps: list[StepView] = field(default_factory=list)
    text: str = ""


def _token_strings(pipe, ids: list[int]) -> list[str]:
    pad = pipe.model.config.pad_token_id
    return ["" if i == pad else pipe.tokenizer.decode([i]) for i in ids]


def _step_viewer(pipe, settings: dict, emit) -> Any:
    """A pipeline callback that rounds row 0's x0 estimate (121) and passes a StepView to ``emit``."""
    model = pipe.model
    block = settings.get("block_adjacent_repeats")
    if block is None:
        block = pipe.generation_config.block_adjacent_repeats
    previous: list[int] | None = None

    def on_step(info: dict) -> None:
        nonlocal previous
        if info["x0"] is None or info.get("start", 0) != 0:
            return
        with torch.no_grad():
            logits = hold(model.rounding_logits(info["x0"][:1]), model.config.pad_token_id,
                          repeat_block=pipe.repeat_block if block else None)
            ids = logits.argmax(-1)[0].tolist()  # (121)
        changed = [previous is None or a != b for a, b in zip(ids, previous or ids)]
        previous = ids
        emit(StepView(int(info["i"]), float(info["t"]), _token_strings(pipe, ids), changed))

    return on_step


def rollout_trace(pipe, prompt: str, **call: Any) -> Trace:
    """Generate one response to ``prompt`` with ``pipe(prompt, **call)`` and record every step's rounded estimate
    (one rollout: a length-conditioned model is watched at its most likely length unless ``length_candidates`` is
    given, since with several the response is the best of several rollouts)."""
    call = {"length_candidates": 1, **call}
    trace = Trace()
    trace.text = pipe(prompt, callback=_step_viewer(pipe, call, trace.steps.append), **call)[0]
    return trace


def watch(pipe, prompt: str, **call: Any) -> Iterator[Trace]:
    """Like :func:`rollout_trace`, yielding the growing trace after every step (the rollout runs in a thread)."""
    call = {"length_candidates": 1, **call}
    updates: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["text"] = pipe(prompt, callback=_step_viewer(pipe, call, updates.put), **call)[0]
        except Exception as error:  # raised again in the caller's thread
            outcome["error"] = error
        updates.put(None)

    threading.Thread(target=run, daemon=True).start()
    trace = Trace()
    while (view := updates.get()) is not None:
        trace.steps.append(view)
        yield trace
    if "error" in outcome:
        raise outcome["error"]
    trace.text = outcome["text"]
    yield trace


STYLE = """
<style>
.dlm-steps { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 13px; }
.dlm-steps td { padding: 2px 6px; border-bottom: 1px solid #ddd; vertical-align: top; }
.dlm-steps td.dlm-num { color: #888; text-align: right; white-space: nowrap; }
.dlm-tok { display: inline-block; margin: 1px; padding: 0 3px; border-radius: 3px; background: #f2f2f2; }
.dlm-tok.dlm-changed { background: #ffd54f; }
.dlm-tok.dlm-pad { background: none; color: #bbb; }
</style>
"""


def render_steps(trace: Trace) -> str:
    """The trace as an HTML table: a row per step, changed tokens highlighted, pad slots as faint dots."""
    rows = []
    for view in trace.steps:
        cells = []
        for token, changed in zip(view.tokens, view.changed):
            kind = "dlm-pad" if token == "" else "dlm-changed" if changed else ""
            cells.append(f'<span class="dlm-tok {kind}">{html.escape(token) if token else "&middot;"}</span>')
        rows.append(f'<tr class="dlm-step"><td class="dlm-num">{view.i + 1}</td><td class="dlm-num">t={view.t:.3f}</td>'
                    f"<td>{''.join(cells)}</td></tr>")
    if not rows:
        return STYLE + "<p>(no steps yet; samplers that report no x0 estimate show only the final text)</p>"
    head = '<table class="dlm-steps"><tr><th>step</th><th>reached</th><th>rounded x0 estimate</th></tr>'
    return STYLE + head + "".join(rows) + "</table>"


def form_settings(method: str, steps: float, eta: float, guidance: float, clamp: bool, seed: float,
                  template: str | None) -> dict[str, Any]:
    """The pipeline call's settings from the form's widgets (eta only for ddim, the one sampler that takes it)."""
    call: dict[str, Any] = {"method": method, "num_steps": int(steps), "eta": float(eta) if method == "ddim" else 0.0,
                            "guidance_scale": float(guidance), "clamp": bool(clamp), "seed": int(seed)}
    if template and template.strip():
        call["response_template"] = template
    return call


def build_app(pipe, classifier_path: str | None = None):
    """The Gradio Blocks app over a loaded :class:`DiffusionLMPipeline`."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from diffusion_lm.text.classifier import ResponseClassifier

    defaults = pipe.generation_config
    classifiers: dict[str, Any] = {}

    def generate(prompt, method, steps, eta, guidance, clamp, seed, template, clf_path, clf_class, clf_scale):
        call = form_settings(method, steps, eta, guidance, clamp, seed, template)
        if clf_path and clf_path.strip() and float(clf_scale) != 0.0:
            try:
                if clf_path not in classifiers:
                    classifiers[clf_path] = ResponseClassifier.from_pretrained(clf_path)
            except (OSError, ValueError) as error:
                raise gr.Error(f"cannot load the classifier at {clf_path!r}: {error}") from error
            call.update(classifier=classifiers[clf_path], classes=clf_class.strip(), classifier_scale=float(clf_scale))
        try:
            for trace in watch(pipe, prompt, **call):
                yield render_steps(trace), trace.text
        except ValueError as error:
            raise gr.Error(str(error)) from error

    with gr.Blocks(title="diffusion-lm: watch a response form") as app:
        gr.Markdown("## diffusion-lm: watch a response form\nEach row is the response the model would give if the "
                    "rollout stopped at that step; highlighted tokens changed since the step before.")
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt")
                template = gr.Textbox(label="Response template (optional, e.g. 'In the beginning [FILL:6] the earth.')",
                                      elem_id="template")
                run = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=1):
                method = gr.Dropdown(list(METHODS), value=defaults.method, label="Sampler")
                steps = gr.Slider(1, 200, value=defaults.num_steps, step=1, label="Steps")
                eta = gr.Slider(0.0, 1.0, value=defaults.eta, step=0.05, label="eta (DDIM noise)")
                guidance = gr.Number(value=defaults.guidance_scale, label="Guidance scale (1 = off)")
                clamp = gr.Checkbox(value=defaults.clamp, label="Clamp to the table")
                seed = gr.Number(value=0, precision=0, label="Seed")
                with gr.Accordion("Classifier control", open=classifier_path is not None):
                    clf_path = gr.Textbox(value=classifier_path or "", label="Classifier folder")
                    clf_class = gr.Textbox(label="Class")
                    clf_scale = gr.Number(value=0.0, label="Classifier scale (0 = off)")
        final = gr.Textbox(label="Response", elem_id="response", interactive=False)
        steps_view = gr.HTML(elem_id="steps")
        run.click(generate, [prompt, method, steps, eta, guidance, clamp, seed, template, clf_path, clf_class, clf_scale],
                  [steps_view, final])
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder written by save_pretrained, or a Hub repo id")
    parser.add_argument("--classifier", default=None, help="a ResponseClassifier folder to offer as the control")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public link")
    args = parser.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        parser.error('the app needs Gradio: pip install "diffusion-lm[app]"')
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(Path(args.model) if Path(args.model).is_dir() else args.model)
    build_app(pipe, args.classifier).queue().launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
