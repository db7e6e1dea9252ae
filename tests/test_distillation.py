"""Step distillation of the text model (D1): grids, teacher trajectories, and a student that learns the teacher's
rollout."""

import json

import pytest
import torch

from diffusion_lm.text.batching import PairBatch, encode_prompts
from diffusion_lm.text.distillation import distillation_loss, refined_grid, student_grid, teacher_trajectories
from diffusion_lm.text.generation import Controls, generate_ids
from diffusion_lm.text.generation_config import GenerationConfig
from diffusion_lm.text.pipeline import DiffusionLMPipeline

from .text_helpers import WORDS, tiny_model

SETTINGS = GenerationConfig(num_steps=8, method="ddim", eta=0.0, log_snr_offset=1.0, temperature=0.7,
                            length_candidates=1)


def _prompts(n: int, seed: int) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[i] for i in torch.randint(0, 20, (int(torch.randint(2, 7, (1,), generator=gen)),),
                                                     generator=gen))
            for _ in range(n)]


def _distil(student, traj, settings: GenerationConfig, steps: int) -> None:
    """``steps`` of Adam on the distillation loss (D1, D2) of ``traj``."""
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(steps):
        loss = distillation_loss(student, traj, settings)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_refined_grid_contains_the_student_grid_and_splits_each_interval_evenly_in_log_snr():
    model, _ = tiny_model()
    coarse = student_grid(model, SETTINGS, 2)
    fine = refined_grid(model, coarse, 4)
    assert len(coarse) == 3 and len(fine) == 9
    assert torch.equal(fine[::4], coarse)
    lam = model.schedule.log_snr(fine.double())
    for k in range(2):
        gaps = lam[4 * k + 1 : 4 * k + 5] - lam[4 * k : 4 * k + 4]
        torch.testing.assert_close(gaps, gaps.mean().expand(4), atol=1e-6, rtol=1e-6)


def test_teacher_states_lie_on_the_teachers_own_rollout():
    model, tok = tiny_model(seed=1, self_conditioning=False)  # a restart cannot hand over the previous estimate
    batch = encode_prompts(tok, _prompts(5, 0), model.config.max_prompt_length)
    traj = teacher_trajectories(model, PairBatch(batch.prompt_ids, batch.prompt_mask.bool()), SETTINGS, 2, 6,
                                torch.Generator().manual_seed(0))
    assert traj.states.shape == (2, 5, model.config.max_response_length, model.config.embedding_dim)
    torch.testing.assert_close(traj.times, student_grid(model, SETTINGS, 2)[:-1].float())
    # restarting the teacher from its own state at the student's second time, on the rest of the fine grid,
    # ends at the same tokens (eta = 0: the rollout is deterministic given the state)
    fine = refined_grid(model, student_grid(model, SETTINGS, 2), 3)
    again = generate_ids(model, PairBatch(batch.prompt_ids, batch.prompt_mask.bool()),
                         SETTINGS.updated(num_steps=3, grid=fine[3:]), noise=traj.states[1])
    assert torch.equal(again, traj.target_ids)


@pytest.mark.parametrize("length_prediction", [False, True])
def test_student_learns_to_say_in_one_step_what_the_teacher_says_in_eight(length_prediction):
    torch.manual_seed(0)
    # the table's logits alone, in the joint denoiser: a random learnt term (O1) fixes most slots' tokens whatever the
    # state, and so does a random encoder-decoder (E2, 96% of tokens), so such a random teacher's one- and eight-step
    # outputs would agree before any distillation
    teacher, tok = tiny_model(seed=3, length_prediction=length_prediction, learned_logits=False,
                              prompt_attention="joint")
    prompts = _prompts(64, 1)
    batch = encode_prompts(tok, prompts, teacher.config.max_prompt_length)
    mask = batch.prompt_mask.bool()
    traj = teacher_trajectories(teacher, PairBatch(batch.prompt_ids, mask), SETTINGS, 1, 8,
                                torch.Generator().manual_seed(0))

    import copy

    student = copy.deepcopy(teacher).train()
    noise = traj.states[0]

    def agreement() -> float:
        out = generate_ids(student.eval(), PairBatch(batch.prompt_ids, mask), SETTINGS.updated(num_steps=1),
                           noise=noise)
        student.train()
        return float((out == traj.target_ids).float().mean())

    before = agreement()
    _distil(student, traj, SETTINGS, 150)
    after = agreement()
    assert before < 0.8 and after > 0.95, (before, after)


def test_distill_cli_saves_a_student_that_samples_in_k_steps(tmp_path, monkeypatch):
    from training.distill import main

    teacher, tok = tiny_model(seed=4)
    DiffusionLMPipeline(teacher, tok, SETTINGS).save_pretrained(tmp_path / "teacher")
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in _prompts(40, 2)))
    args = ["--teacher", str(tmp_path / "teacher"), "--data", str(data), "--out", str(tmp_path / "out"),
            "--student-steps", "2", "--teacher-steps", "4", "--prompts", "32", "--held-out", "8", "--steps", "5",
            "--batch-size", "8"]
    assert main(args) == 0
    student = DiffusionLMPipeline.from_pretrained(tmp_path / "out" / "model")
    assert student.generation_config.num_steps == 2
    assert student.generation_config.log_snr_offset == SETTINGS.log_snr_offset
    assert student.generation_config.guidance_scale == 1.0
    assert len(student(["w1 w2"])) == 1
    report = json.loads((tmp_path / "out" / "distillation.json").read_text())
    assert report["prompts"] == 32 and set(report["held_out_same_text_as_teacher"]) == {"1", "2"}
    assert (tmp_path / "out" / "teacher_trajectories.safetensors").exists()
    import diffusion_lm.text.distillation as library

    calls = []
    original = library.teacher_trajectories
    monkeypatch.setattr(library, "teacher_trajectories", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert main(args) == 0
    assert len(calls) == 1, ("a second run reuses the stored trajectories "
                             "(only the held-out comparison runs the teacher)")
    assert main(args[:-6] + ["--held-out", "4", "--steps", "5", "--batch-size", "8"]) == 0
    assert len(calls) > 2, "other prompts (a different --held-out split) collect again"
    (tmp_path / "out" / "teacher_trajectories.safetensors").write_bytes(b"not a safetensors file")
    assert main(args) == 0, "a damaged store is collected again"
    first = DiffusionLMPipeline.from_pretrained(tmp_path / "out" / "model").model
    more = [str(tmp_path / "more") if a == str(tmp_path / "out") else a for a in args]
    assert main(more + ["--student-init", str(tmp_path / "out" / "model")]) == 0
    report = json.loads((tmp_path / "more" / "distillation.json").read_text())
    assert report["student_init"] == str(tmp_path / "out" / "model")
    import torch as _torch

    continued = DiffusionLMPipeline.from_pretrained(tmp_path / "more" / "model").model
    assert not all(_torch.equal(a, b) for a, b in zip(first.parameters(), continued.parameters())), "it trained on"


def test_distill_cli_names_bad_settings(tmp_path, capsys):
    from training.distill import main

    teacher, tok = tiny_model(seed=4)
    DiffusionLMPipeline(teacher, tok, SETTINGS).save_pretrained(tmp_path / "teacher")
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"question": "w1"}) + "\n")
    base = ["--teacher", str(tmp_path / "teacher"), "--data", str(data), "--out", str(tmp_path / "out")]
    assert main(base + ["--student-steps", "3", "--teacher-steps", "20"]) == 2
    assert "multiple of --student-steps" in capsys.readouterr().err
    assert main(base) == 2
    assert "no field 'prompt'" in capsys.readouterr().err
    DiffusionLMPipeline(teacher, tok, SETTINGS.updated(method="dpm_solver")).save_pretrained(tmp_path / "off_grid")
    data.write_text(json.dumps({"prompt": "w1"}) + "\n" + json.dumps({"prompt": "w2"}) + "\n")
    assert main(["--teacher", str(tmp_path / "off_grid"), "--data", str(data), "--out", str(tmp_path / "o2"),
                 "--held-out", "0", "--teacher-steps", "4"]) == 2
    assert "steps on the grid" in capsys.readouterr().err
    assert main(base + ["--student-steps", "2"]) == 2
    assert "needs --teacher-steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--student-steps", "0"])


def test_skip_reads_the_prompts_after_the_first_rows(tmp_path):
    """A later distillation round takes prompts the student has not seen: ``--skip N`` starts after row N."""
    from training.distill import main, read_prompts

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"w{i}"}) + "\n" for i in range(6)))
    assert read_prompts(data, "prompt", 3) == ["w0", "w1", "w2"]
    assert read_prompts(data, "prompt", 3, skip=2) == ["w2", "w3", "w4"]
    assert read_prompts(data, "prompt", 10, skip=4) == ["w4", "w5"]
    with pytest.raises(ValueError, match="after the first 6 rows"):
        read_prompts(data, "prompt", 3, skip=6)
    with pytest.raises(SystemExit):
        main(["--teacher", "x", "--data", str(data), "--out", str(tmp_path / "o"), "--skip", "-1"])


@pytest.mark.parametrize("length_prediction", [False, True])
def test_the_students_self_conditioning_input_is_what_its_sampler_feeds_back(length_prediction):
    """(D1) at t_1 the student reads its estimate from t_0 built as sampling builds it: the same edits of the logits
    (repeats blocked, the length held) and the same temperature; the first state is the shared noise."""
    model, tok = tiny_model(seed=6, length_prediction=length_prediction)
    with torch.no_grad():  # most slots lean to one word: repeats to block
        model.denoiser.out.bias.copy_(model.embedding_table[tok.convert_tokens_to_ids(WORDS[0])]
                                      / model.config.embedding_scale)
    settings = SETTINGS.updated(block_adjacent_repeats=True)
    batch = encode_prompts(tok, _prompts(4, 3), model.config.max_prompt_length)
    mask = batch.prompt_mask.bool()
    traj = teacher_trajectories(model, PairBatch(batch.prompt_ids, mask), settings, 2, 4,
                                torch.Generator().manual_seed(0))
    fed = {"loss": [], "sampler": []}
    original = model.predict

    def spy(key):
        def predict(*args, **kwargs):
            fed[key].append(args[4] if len(args) > 4 else kwargs.get("self_cond"))
            return original(*args, **kwargs)
        return predict

    model.predict = spy("loss")
    distillation_loss(model, traj, settings)
    model.predict = spy("sampler")
    lengths = (traj.target_ids != model.config.pad_token_id).sum(-1) if length_prediction else None
    generate_ids(model, PairBatch(batch.prompt_ids, mask),
                 settings.updated(num_steps=2, grid=student_grid(model, settings, 2)),
                 Controls(lengths=lengths), noise=traj.states[0])
    del model.predict
    assert fed["loss"][0] is None and fed["sampler"][0] is None
    torch.testing.assert_close(fed["loss"][1], fed["sampler"][1])


BEAM = SETTINGS.updated(length_candidates=3, length_candidate_ratio=0.0)


def test_the_teachers_own_call_is_what_its_pipeline_writes_from_the_same_noise():
    """(D2) with no teacher steps the targets are the teacher's whole call (its steps and its length beam), and the
    student's only state is the starting noise at t = 1."""
    teacher, tok = tiny_model(seed=7, length_prediction=True)
    batch = encode_prompts(tok, _prompts(12, 4), teacher.config.max_prompt_length)
    pair = PairBatch(batch.prompt_ids, batch.prompt_mask.bool())
    cfg = teacher.config
    noise = torch.randn(12, cfg.max_response_length, cfg.embedding_dim, generator=torch.Generator().manual_seed(1))
    traj = teacher_trajectories(teacher, pair, BEAM, 1, None, torch.Generator().manual_seed(2), noise=noise)
    call = generate_ids(teacher, pair, BEAM, noise=noise, generator=torch.Generator().manual_seed(2))
    assert torch.equal(traj.target_ids, call)
    assert torch.equal(traj.states, noise[None]) and traj.times.tolist() == [1.0]
    with pytest.raises(ValueError, match="one-step student"):
        teacher_trajectories(teacher, pair, BEAM, 2, None)


def test_a_one_step_one_candidate_student_learns_the_beams_choice_of_length():
    """(D2) the teacher's beam of three lengths picks other than its classifier's top-1 for some prompts; after
    distillation the student's top-1 length is the beam's choice and its one-candidate, one-step call writes the
    beam's response."""
    import copy

    torch.manual_seed(0)
    # L2 alone: a random fertility term (L4) makes p(n) so peaked that the beam rarely overrules its top-1
    teacher, tok = tiny_model(seed=8, length_prediction=True, length_fertility=False)
    batch = encode_prompts(tok, _prompts(64, 5), teacher.config.max_prompt_length)
    pair = PairBatch(batch.prompt_ids, batch.prompt_mask.bool())
    traj = teacher_trajectories(teacher, pair, BEAM, 1, None, torch.Generator().manual_seed(0))
    chosen = (traj.target_ids != teacher.config.pad_token_id).sum(-1)
    top1 = teacher.length_logits(pair.prompt_ids, pair.prompt_mask).argmax(-1)
    assert (chosen != top1).float().mean() > 0.2, "the beam must choose otherwise than top-1 for this to test anything"
    student = copy.deepcopy(teacher).train()
    one = BEAM.updated(num_steps=1, length_candidates=1)

    def agreement() -> tuple[float, float]:
        student.eval()
        with torch.no_grad():
            lengths = student.length_logits(pair.prompt_ids, pair.prompt_mask).argmax(-1)
            out = generate_ids(student, pair, one, noise=traj.states[0])
        student.train()
        return float((lengths == chosen).float().mean()), float((out == traj.target_ids).all(-1).float().mean())

    before = agreement()
    _distil(student, traj, one, 200)
    after = agreement()
    assert before[0] < 0.8 and after[0] > 0.95, (before, after)
    assert before[1] < 0.5 and after[1] > 0.9, (before, after)


def test_distill_cli_by_default_saves_a_one_step_one_candidate_student_of_the_teachers_call(tmp_path):
    from safetensors.torch import load_file

    from training.distill import main

    teacher, tok = tiny_model(seed=4, length_prediction=True)
    DiffusionLMPipeline(teacher, tok, BEAM).save_pretrained(tmp_path / "teacher")
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in _prompts(40, 2)))
    assert main(["--teacher", str(tmp_path / "teacher"), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--prompts", "32", "--held-out", "8", "--steps", "3", "--batch-size", "8"]) == 0
    student = DiffusionLMPipeline.from_pretrained(tmp_path / "out" / "model").generation_config
    assert (student.num_steps, student.length_candidates) == (1, 1)
    assert (student.method, student.temperature) == (BEAM.method, BEAM.temperature)
    stored = load_file(str(tmp_path / "out" / "teacher_trajectories.safetensors"))
    assert stored["states"].shape[0] == 1 and stored["times"].tolist() == [1.0]
