"""Watch a response form: a Gradio app that shows the rounded x0 estimate after every sampler step.

    pip install -e ".[app]"        # in a checkout of the repository
    python -m inference.app --model PATH [--classifier CLF_PATH] [--port 7860]

Type a prompt (or pick one of the model card's examples), set any generation setting (the form has a widget for
every ``GenerationConfig`` field), optionally a response template with ``[FILL]`` slots, truncation, or a classifier
control with one of the classifier's classes, and press Generate: the table fills in step by step,
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
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffusion_lm.text.generation_config import GRIDS, GenerationConfig, text_samplers
from diffusion_lm.text.rollout import hold

APP_FIXED = ("num_samples", "mbr", "length_candidates", "length_candidate_ratio")  # one rollout of one length


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


def form_fields() -> list[str]:
    """The generation settings the form shows: every ``GenerationConfig`` field but those fixed for watching."""
    return [name for name in GenerationConfig.names() if name not in APP_FIXED]


def form_settings(values: dict[str, Any], seed: float = 0, template: str | None = None,
                  truncation: bool = False) -> dict[str, Any]:
    """The pipeline call's settings from the form's widgets, typed as the ``GenerationConfig`` fields are (a value
    left empty keeps the model's own)."""
    import typing

    hints = typing.get_type_hints(GenerationConfig)
    call: dict[str, Any] = {"seed": int(seed or 0), "truncation": bool(truncation)}
    for name, value in values.items():
        if value is None or (isinstance(value, str) and value.strip() in ("", "model default")):
            continue
        kinds = set(typing.get_args(hints[name])) or {hints[name]}
        if bool in kinds:
            call[name] = bool(value)
        elif int in kinds:
            call[name] = int(float(value))
        elif float in kinds:
            call[name] = float(value)
        else:
            call[name] = value
    if template and template.strip():
        call["response_template"] = template
    return call


def _widget(gr, name: str, default: Any, help_text: str):
    """A Gradio input for one ``GenerationConfig`` field, typed as the field is; an optional one is a text box whose
    empty value keeps the model's own."""
    info = help_text.split(". ")[0].replace("``", "")[:140]
    common = dict(label=name, info=info, elem_id=f"setting-{name}")
    if name == "method":
        return gr.Dropdown(text_samplers(), value=default, **common)
    if name == "grid":
        return gr.Dropdown(["model default", *GRIDS], value=default or "model default", **common)
    if isinstance(default, bool):
        return gr.Checkbox(value=default, **common)
    if default is None:
        return gr.Textbox(value="", placeholder="the model's own", **common)
    return gr.Number(value=default, precision=0 if isinstance(default, int) else None, **common)


def _classifier_classes(path: str | None) -> list[str]:
    """The class names a classifier folder offers (empty when there is none, or it cannot be read)."""
    if not path or not path.strip():
        return []
    from diffusion_lm.text.classifier import ResponseClassifierConfig

    try:
        return list(ResponseClassifierConfig.from_pretrained(path.strip()).class_names)
    except (OSError, ValueError):
        return []


def build_app(pipe, classifier_path: str | None = None, examples: list[str] | None = None):
    """The Gradio Blocks app over a loaded :class:`DiffusionLMPipeline`; ``examples`` (default: the prompts of the
    model card's widget) are offered under the prompt box."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from diffusion_lm.text.classifier import ResponseClassifier

    defaults = pipe.generation_config
    helps = GenerationConfig.describe()
    names = form_fields()
    classifiers: dict[str, Any] = {}
    examples = examples if examples is not None else pipe.card.get("examples", [])

    def generate(prompt, template, truncation, seed, clf_path, clf_class, clf_scale, *values):
        call = form_settings(dict(zip(names, values)), seed, template, truncation)
        try:
            if clf_path and clf_path.strip() and float(clf_scale or 0) != 0.0:
                if clf_path not in classifiers:
                    classifiers[clf_path] = ResponseClassifier.from_pretrained(clf_path.strip())
                if not clf_class:
                    raise ValueError(f"pick a class for the classifier: one of {_classifier_classes(clf_path)}.")
                call.update(classifier=classifiers[clf_path], classes=clf_class, classifier_scale=float(clf_scale))
            for trace in watch(pipe, prompt, **call):
                yield render_steps(trace), trace.text
        except (OSError, ValueError) as error:  # the user's input: shown in the page, no traceback in the terminal
            raise gr.Error(str(error).replace("pass truncation=True", "tick 'Truncate long prompts'"),
                           print_exception=False) from None

    with gr.Blocks(title="diffusion-lm: watch a response form") as app:
        gr.Markdown("## diffusion-lm: watch a response form\nEach row is the response the model would give if the "
                    "rollout stopped at that step; highlighted tokens changed since the step before. One rollout at "
                    "the model's most likely length is watched.")
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt")
                if examples:
                    gr.Examples([[e] for e in examples], inputs=[prompt], label="Examples")
                template = gr.Textbox(label="Response template (optional, e.g. 'In the beginning [FILL:6] the earth.')",
                                      elem_id="template")
                truncation = gr.Checkbox(value=False, label="Truncate long prompts", elem_id="truncation")
                run = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=1):
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                with gr.Accordion("Generation settings (empty: the model's own)", open=True):
                    settings = [_widget(gr, n, getattr(defaults, n), helps.get(n, "")) for n in names]
                with gr.Accordion("Classifier control", open=classifier_path is not None):
                    clf_path = gr.Textbox(value=classifier_path or "", label="Classifier folder", elem_id="clf-path")
                    offered = _classifier_classes(classifier_path)
                    clf_class = gr.Dropdown(offered, value=offered[0] if offered else None, label="Class",
                                            elem_id="clf-class")
                    clf_scale = gr.Number(value=0.0, label="Classifier scale (0 = off)", elem_id="clf-scale")
                    clf_path.change(lambda p: gr.update(choices=_classifier_classes(p), value=None), [clf_path],
                                    [clf_class])
        final = gr.Textbox(label="Response", elem_id="response", interactive=False)
        steps_view = gr.HTML(elem_id="steps")
        run.click(generate, [prompt, template, truncation, seed, clf_path, clf_class, clf_scale, *settings],
                  [steps_view, final])
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder written by save_pretrained, or a Hub repo id")
    parser.add_argument("--classifier", default=None, help="a ResponseClassifier folder to offer as the control")
    parser.add_argument("--example", action="append", default=None,
                        help="an example prompt to offer (repeat for several; default: the model card's examples)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public link")
    args = parser.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        parser.error('the app needs Gradio: pip install -e ".[app]" in the repository (or pip install gradio)')
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    try:
        pipe = DiffusionLMPipeline.from_pretrained(Path(args.model) if Path(args.model).is_dir() else args.model)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    app = build_app(pipe, args.classifier, args.example)
    app.queue().launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
