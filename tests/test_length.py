"""Length prediction and the length-conditioned denoiser (L2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffusion_lm import DiffusionLMModel
from diffusion_lm.text.batching import encode_pairs
from diffusion_lm.text.generation_config import GenerationConfig
from diffusion_lm.text.length import past_the_end, response_lengths
from diffusion_lm.text.likelihood import nll_bound
from diffusion_lm.text.pipeline import DiffusionLMPipeline
from diffusion_lm.text.rollout import Rollout
from diffusion_lm.text.templates import encode_template

from .text_helpers import generate, reverse_pairs, tiny_model, train_steps


def _batch(tok, model, pairs):
    cfg = model.config
    return encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], cfg.max_prompt_length,
                        cfg.max_response_length)


def test_lengths_and_the_slots_past_them():
    ids = torch.tensor([[5, 6, 0, 0], [5, 0, 0, 0], [5, 6, 7, 8]])
    lengths = response_lengths(ids, pad_token_id=0)
    assert lengths.tolist() == [2, 1, 4]
    assert past_the_end(lengths, 4).tolist() == [[False, False, True, True], [False, True, True, True], [False] * 4]


def test_length_loss_is_the_cross_entropy_of_the_true_length():
    model, tok = tiny_model(length_prediction=True)
    batch = _batch(tok, model, reverse_pairs(6, seed=1))
    out = model(**batch.as_kwargs(), generator=torch.Generator().manual_seed(0))
    lengths = (batch.response_ids != model.config.pad_token_id).sum(-1)
    expected = F.cross_entropy(model.length_logits(batch.prompt_ids, batch.prompt_mask), lengths)
    assert torch.allclose(out.loss_length, expected, atol=1e-6)
    plain = tiny_model(length_prediction=False)[0](**batch.as_kwargs(), generator=torch.Generator().manual_seed(0))
    assert plain.loss_length is None


def test_length_classifier_reads_the_prompt_only_and_the_denoiser_reads_the_length():
    model, tok = tiny_model(length_prediction=True)
    batch = _batch(tok, model, reverse_pairs(4, seed=2))
    logits = model.length_logits(batch.prompt_ids, batch.prompt_mask)
    assert logits.shape == (4, model.config.max_response_length + 1)
    z, t = torch.randn(4, 8, 16), torch.full((4,), 0.5)
    short = past_the_end(torch.full((4,), 2), 8)
    longer = past_the_end(torch.full((4,), 5), 8)
    a = model.denoise(batch.prompt_ids, batch.prompt_mask, z, t, past=short)
    b = model.denoise(batch.prompt_ids, batch.prompt_mask, z, t, past=longer)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pass past"):
        model.denoise(batch.prompt_ids, batch.prompt_mask, z, t)


def test_a_length_conditioned_rollout_writes_exactly_the_given_length():
    model, tok = tiny_model(length_prediction=True)
    batch = _batch(tok, model, reverse_pairs(5, seed=3))
    lengths = torch.tensor([0, 1, 3, 5, 8])
    for method in ("ddim", "dpm_solver++"):
        ids = generate(model, batch, num_steps=3, method=method, lengths=lengths,
                           generator=torch.Generator().manual_seed(0))
        assert ((ids != model.config.pad_token_id).sum(-1) == lengths).all()
        assert (ids[past_the_end(lengths, 8)] == model.config.pad_token_id).all()
    logits = model.length_logits(batch.prompt_ids, batch.prompt_mask)
    ids = generate(model, batch, num_steps=2, length_candidates=1)
    assert ((ids != model.config.pad_token_id).sum(-1) == logits.argmax(-1)).all()
    ids = generate(model, batch, num_steps=2)  # the default: one of the 3 likeliest
    assert ((ids != model.config.pad_token_id).sum(-1)[:, None] == logits.topk(3, -1).indices).any(-1).all()


def test_length_beam_keeps_the_candidate_the_model_rates_most_likely():
    model, tok = tiny_model(length_prediction=True, seed=4)
    batch = _batch(tok, model, reverse_pairs(3, seed=4))
    k, settings = 3, GenerationConfig(num_steps=3, eta=0.0)
    noise = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(1))
    chosen = generate(model, batch, settings, noise=noise, length_candidates=k,
                          generator=torch.Generator().manual_seed(2))
    top = model.length_logits(batch.prompt_ids, batch.prompt_mask).topk(k, -1).indices  # (3, k)
    repeat = lambda x: x.repeat_interleave(k, 0)  # noqa: E731
    candidates = torch.stack([generate(model, batch, settings, noise=noise, lengths=top[:, j])
                              for j in range(k)], 1)  # (3, k, N): each length's own rollout from the same noise
    beam = Rollout(model, settings, repeat(batch.prompt_ids), repeat(batch.prompt_mask), lengths=top.reshape(-1))
    scores = beam.length_score(candidates.flatten(0, 1), torch.Generator().manual_seed(2)).view(3, k)
    assert torch.equal(chosen, candidates[torch.arange(3), scores.argmax(-1)])
    assert ((chosen != model.config.pad_token_id).sum(-1)[:, None] == top).any(-1).all()


def _rows_per_pass(model, run) -> list[int]:
    """The batch size of every denoiser pass while ``run()`` generates."""
    rows = []
    hook = model.denoiser.register_forward_hook(
        lambda module, args, kwargs, out: rows.append((args[2] if len(args) > 2 else kwargs["z"]).shape[0]),
        with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        hook.remove()
    return rows


def test_a_batch_of_mixed_lengths_is_one_denoiser_pass_per_step():
    """The length beam rolls out every prompt's k lengths (9 rows of different lengths here) together: one denoiser
    pass over all of them per step and one for the score, not a batch per length."""
    model, tok = tiny_model(length_prediction=True, seed=6)
    batch = _batch(tok, model, reverse_pairs(3, seed=6))
    settings = GenerationConfig(num_steps=4, method="ddim", eta=1.0, length_candidate_ratio=0.0)
    rows = _rows_per_pass(model, lambda: generate(model, batch, settings, length_candidates=3))
    assert rows == [9] * 5  # 4 steps and the length score, each over 3 prompts x 3 lengths


def test_where_the_length_is_clear_the_beam_rolls_out_one_candidate():
    """``length_candidate_ratio``: a candidate far less likely than the first is not rolled out. A prompt whose
    length the classifier is sure of gets exactly the one-candidate call's response; the others keep their beam."""
    model, tok = tiny_model(length_prediction=True, length_fertility=False, seed=7)  # the head alone sets p(n)
    batch = _batch(tok, model, reverse_pairs(3, seed=7))
    with torch.no_grad():
        model.length_predictor.head.bias[4] += 30.0  # every prompt: n = 4, all but certain
    settings = GenerationConfig(num_steps=3, eta=1.0, length_candidates=3)
    pruned = []
    rows = _rows_per_pass(model, lambda: pruned.append(generate(model, batch, settings,
                                                                generator=torch.Generator().manual_seed(3))))
    assert rows == [3] * 3  # 3 prompts, one candidate each: 3 steps, and no score where there is nothing to choose
    one = generate(model, batch, settings, length_candidates=1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(pruned[0], one) and ((one != model.config.pad_token_id).sum(-1) == 4).all()
    everything = _rows_per_pass(model, lambda: generate(model, batch, settings, length_candidate_ratio=0.0))
    assert everything == [9] * 4  # ratio 0: every candidate, still one pass per step
    with pytest.raises(ValueError, match="length_candidate_ratio must lie in"):
        GenerationConfig(length_candidate_ratio=1.5)


def test_length_candidate_score_is_the_factorised_likelihood_at_t_one():
    model, tok = tiny_model(length_prediction=True, seed=5)
    batch = _batch(tok, model, reverse_pairs(4, seed=5))
    lengths = torch.tensor([2, 3, 4, 5])
    past = past_the_end(lengths, 8)

    rollout = Rollout(model, GenerationConfig(), batch.prompt_ids, batch.prompt_mask, lengths=lengths)

    def score(ids):
        return rollout.length_score(ids, torch.Generator().manual_seed(0))

    # the per-slot argmax at t = 1 (the same noise): a factorised likelihood rates nothing of that length higher
    z = float(model.schedule.sigma(1.0)) * torch.randn(4, 8, 16, generator=torch.Generator().manual_seed(0))
    t = torch.ones(4)
    assert model.config.self_conditioning  # read without its self-conditioning input: one pass, not two
    best = model.predict(batch.prompt_ids, batch.prompt_mask, z, t, past=past)[1].argmax(-1).masked_fill(past, 0)
    calls = []
    hook = model.denoiser.register_forward_hook(lambda *_: calls.append(1))
    top = score(best)
    hook.remove()
    assert len(calls) == 1  # one evaluation for the whole batch of candidates
    for seed in range(5):
        other = torch.randint(2, 22, (4, 8), generator=torch.Generator().manual_seed(seed)).masked_fill(past, 0)
        assert (score(other) <= top + 1e-5).all()
    assert torch.allclose(score(best.masked_fill(past, 7)), top)  # what lies past the length does not count


def test_a_template_sets_the_length_of_a_length_conditioned_rollout():
    model, tok = tiny_model(length_prediction=True)
    ids, given = encode_template(tok, "w3 [FILL:2] w5", 8, model.config.pad_token_id)
    batch = _batch(tok, model, [("w1 w2", "w1")])
    out = generate(model, batch, num_steps=2, response_ids=ids[None], given=given[None])
    assert (out[0, :4] != model.config.pad_token_id).all() and (out[0, 4:] == model.config.pad_token_id).all()
    assert out[0, 0] == ids[0] and out[0, 3] == ids[3]


def test_nll_of_a_length_model_adds_minus_log_p_of_the_length():
    model, tok = tiny_model(length_prediction=True)
    batch = _batch(tok, model, reverse_pairs(3, seed=5))
    bound = nll_bound(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, num_samples=4,
                      generator=torch.Generator().manual_seed(0))
    lengths = (batch.response_ids != model.config.pad_token_id).sum(-1)
    log_p = model.length_logits(batch.prompt_ids, batch.prompt_mask).double().log_softmax(-1)
    assert torch.allclose(bound.length, -log_p[torch.arange(3), lengths])
    assert torch.allclose(bound.nats, bound.prior + bound.diffusion + bound.reconstruction + bound.length)


def test_lengths_are_checked():
    model, tok = tiny_model(length_prediction=True)
    batch = _batch(tok, model, reverse_pairs(2, seed=6))
    with pytest.raises(ValueError, match="lengths must be one integer"):
        generate(model, batch, num_steps=1, lengths=torch.tensor([1, 9]))
    plain, _ = tiny_model(length_prediction=False)
    with pytest.raises(ValueError, match="length-conditioned"):
        generate(plain, batch, num_steps=1, lengths=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="length_candidates"):
        generate(model, batch, num_steps=1, length_candidates=0)


def test_length_model_learns_lengths_and_saves_them(tmp_path):
    model, tok = tiny_model(length_prediction=True, max_response_length=8)
    pairs = reverse_pairs(400, seed=7)
    train_steps(model, tok, pairs, steps=150)
    held_out = reverse_pairs(100, seed=8)
    batch = _batch(tok, model, held_out)
    predicted = model.length_logits(batch.prompt_ids, batch.prompt_mask).argmax(-1)
    truth = (batch.response_ids != model.config.pad_token_id).sum(-1)
    assert (predicted == truth).float().mean() > 0.95  # a reversed prompt is as long as the prompt
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = DiffusionLMModel.from_pretrained(tmp_path)
    assert torch.equal(again.length_logits(batch.prompt_ids, batch.prompt_mask).argmax(-1), predicted)
    texts = DiffusionLMPipeline.from_pretrained(tmp_path)([p for p, _ in held_out[:10]], num_steps=2,
                                                          length_candidates=1)
    assert [len(t.split()) for t in texts] == [len(p.split()) for p, _ in held_out[:10]]


def test_the_pipeline_writes_the_asked_length():
    model, tok = tiny_model(length_prediction=True)
    pipe = DiffusionLMPipeline(model, tok)
    texts = pipe(["w1 w2", "w3", "w4 w5 w6"], num_steps=2, length=[1, 4, 6])
    assert [len(t.split()) for t in texts] == [1, 4, 6]
    assert [len(t.split())
            for t in pipe(["w1 w2", "w3"], num_steps=2, length=3, num_samples=2, return_all=True)[1]] == [3, 3]
    with pytest.raises(ValueError, match="length must be an integer"):
        pipe(["w1"], length=[1, 2])
    with pytest.raises(ValueError, match="needs a length-conditioned model"):
        DiffusionLMPipeline(*tiny_model(length_prediction=False))(["w1"], length=2)


def test_relative_length_score_adds_the_offset_head_at_n_minus_m():
    """(L3): log p(n | x) = a_n + b_{n - m} up to a constant, m the prompt's token count; with the absolute head
    silenced and the offset head favouring n - m = 1, every prompt's most likely length is its own plus one."""
    model, tok = tiny_model(length_prediction=True, length_relative=True, length_fertility=False)
    predictor = model.length_predictor
    P = model.config.max_prompt_length
    with torch.no_grad():
        predictor.head.weight.zero_(), predictor.head.bias.zero_()
        predictor.offset_head.weight.zero_(), predictor.offset_head.bias.zero_()
        predictor.offset_head.bias[P + 1] = 5.0
    pairs = reverse_pairs(3, seed=4)
    pairs = [(" ".join(p.split()[:k]), r) for (p, r), k in zip(pairs, (1, 3, 5))]
    batch = _batch(tok, model, pairs)
    m = batch.prompt_mask.sum(-1)
    logits = model.length_logits(batch.prompt_ids, batch.prompt_mask)
    assert logits.argmax(-1).tolist() == (m + 1).tolist()
    assert torch.allclose(logits.gather(-1, (m + 1)[:, None]).squeeze(-1), torch.full((3,), 5.0))
    cut = batch.prompt_ids[:, :6], batch.prompt_mask[:, :6]  # fewer padded slots: the same offsets
    assert torch.allclose(model.length_logits(*cut), logits)
    assert tiny_model(length_prediction=True)[0].length_predictor.offset_head is None  # L3 is off by default


def test_fertility_length_score_is_a_gaussian_around_the_summed_fertilities():
    """(L4): log p(n | x) = a_n - (n - sum_i f_i)^2 / (2 v) up to a constant. With the absolute head silenced,
    every token's fertility 2 and v = softplus(b) + 0.05, the logits are that parabola around 2m, m the prompt's
    token count, and padded slots add nothing to the count."""
    model, tok = tiny_model(length_prediction=True, length_fertility=True)
    predictor = model.length_predictor
    with torch.no_grad():
        predictor.head.weight.zero_(), predictor.head.bias.zero_()
        predictor.fertility.weight.zero_(), predictor.fertility.bias.fill_(2.0)
        predictor.spread.weight.zero_(), predictor.spread.bias.fill_(0.3)
    pairs = reverse_pairs(3, seed=4)
    pairs = [(" ".join(p.split()[:k]), r) for (p, r), k in zip(pairs, (1, 2, 3))]
    batch = _batch(tok, model, pairs)
    m = batch.prompt_mask.sum(-1).double()
    logits = model.length_logits(batch.prompt_ids, batch.prompt_mask).double()
    n = torch.arange(logits.shape[-1], dtype=torch.float64)
    variance = math.log1p(math.exp(0.3)) + 0.05
    expected = -(n[None] - 2 * m[:, None]) ** 2 / (2 * variance)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert logits.argmax(-1).tolist() == (2 * m).long().tolist()
    assert tiny_model(length_prediction=True, length_fertility=False)[0].length_predictor.fertility is None


def test_the_fertility_term_alone_learns_lengths_that_are_counts():
    """(L4) with the absolute head held at zero, only the summed fertilities can place n: on lengths that are
    counts (n = how many of a prompt's 1..10 tokens lie in the first half of a 12-token vocabulary) the classifier
    learns them, each token's fertility near 1 or 0."""
    from diffusion_lm.text.configuration import DiffusionLMConfig
    from diffusion_lm.text.length import LengthPredictor

    torch.manual_seed(0)
    config = DiffusionLMConfig(vocab_size=12, embedding_dim=16, hidden_size=32, num_heads=2, max_prompt_length=10,
                               max_response_length=10, length_fertility=True)
    table = torch.randn(12, 16)
    predictor = LengthPredictor(config)
    with torch.no_grad():
        predictor.head.weight.zero_(), predictor.head.bias.zero_()
    predictor.head.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in predictor.parameters() if p.requires_grad], lr=3e-3)
    generator = torch.Generator().manual_seed(1)

    def draw(batch):
        ids = torch.randint(0, 12, (batch, 10), generator=generator)
        mask = torch.arange(10)[None] < torch.randint(1, 11, (batch, 1), generator=generator)
        return table[ids], mask, ((ids < 6) & mask).sum(-1)

    for _ in range(300):
        x, mask, n = draw(64)
        loss = F.cross_entropy(predictor(x, mask), n)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    with torch.no_grad():
        x, mask, n = draw(512)
        accuracy = (predictor(x, mask).argmax(-1) == n).float().mean().item()
    assert accuracy > 0.95, accuracy


def test_the_length_classifiers_gradients_are_clipped_apart_from_the_denoisers():
    """One global norm would scale the denoiser's step down by the length classifier's larger gradients; each
    group is clipped to the limit on its own, so a denoiser gradient under the limit passes unchanged."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from diffusion_lm.training.train import clip_gradients

    model, _ = tiny_model(length_prediction=True)
    groups = model.clipping_groups()
    assert len(groups) == 2 and {id(p) for p in groups[1]} == {id(p) for p in model.length_predictor.parameters()}
    assert sum(len(g) for g in groups) == len([p for p in model.parameters() if p.requires_grad])
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    denoiser_grad, length_grad = groups[0][0].grad, groups[1][0].grad
    denoiser_grad.view(-1)[0], length_grad.view(-1)[0] = 0.5, 20.0
    try:
        norms = clip_gradients(Accelerator(cpu=True), groups, max_norm=1.0)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert [float(n) for n in norms] == pytest.approx([0.5, 20.0])
    assert float(denoiser_grad.view(-1)[0]) == pytest.approx(0.5)
    assert float(length_grad.view(-1)[0]) == pytest.approx(1.0, rel=1e-5)
    assert len(tiny_model(length_prediction=False)[0].clipping_groups()) == 1


def test_mask_predict_refinement_rewrites_the_least_confident_share_each_round(monkeypatch):
    """(M1): round i of R holds the most confident slots and re-writes the ceil((R - i) / (R + 1) n) least confident
    of each response's n slots (slots past the length stay pad); only re-written slots change."""
    import diffusion_lm.text.generation as generation

    model, tok = tiny_model(length_prediction=True, seed=7)
    batch = _batch(tok, model, reverse_pairs(4, seed=9))
    lengths = torch.tensor([2, 5, 7, 8])
    calls, original = [], generation._sample

    def spy(model, prompt_ids, prompt_mask, s, c, lengths, given, noise, **run):
        ids, rollout = original(model, prompt_ids, prompt_mask, s, c, lengths, given, noise, **run)
        calls.append((s.num_steps, given, ids.clone(), rollout.last_confidence.clone()))
        return ids, rollout

    monkeypatch.setattr(generation, "_sample", spy)
    out = generate(model, batch, num_steps=3, refine_iterations=3, refine_steps=2, lengths=lengths,
                   generator=torch.Generator().manual_seed(0))
    assert [c[0] for c in calls] == [3, 2, 2, 2] and calls[0][1] is None
    ids, confidence = calls[0][2], calls[0][3]
    for i, (_, (held_ids, held), new_ids, new_confidence) in enumerate(calls[1:]):
        share = (3 - i) / 4
        rewrite = ~held & (torch.arange(8)[None] < lengths[:, None])
        assert rewrite.sum(-1).tolist() == [math.ceil(share * n) for n in lengths.tolist()]
        for row in range(4):
            n = int(lengths[row])
            least = confidence[row, :n].argsort()[: math.ceil(share * n)]
            assert set(least.tolist()) == set(rewrite[row].nonzero().squeeze(-1).tolist())
        assert torch.equal(held_ids[held], ids[held]) and torch.equal(new_ids[held], ids[held])
        ids = torch.where(rewrite, new_ids, ids)
        confidence = torch.where(rewrite, new_confidence, confidence)
    assert torch.equal(out, ids) and ((out != model.config.pad_token_id).sum(-1) == lengths).all()


def test_a_checkpoint_saved_before_fertility_lengths_loads_without_them(tmp_path):
    """(L4) is on for new models; a config.json written before the option existed (no ``length_fertility`` key)
    describes a model without it, and loads as one, so its weights fit and its lengths are scored as they were."""
    import json

    model, tok = tiny_model(length_prediction=True, length_fertility=False)
    assert tiny_model(length_prediction=True)[0].config.length_fertility  # the default for new models
    pipe = DiffusionLMPipeline(model, tok)
    pipe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("length_fertility")
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = DiffusionLMPipeline.from_pretrained(tmp_path).model
    assert not loaded.config.length_fertility and loaded.length_predictor.fertility is None
    batch = _batch(tok, model, reverse_pairs(4, seed=2))
    assert torch.equal(loaded.length_logits(batch.prompt_ids, batch.prompt_mask),
                       model.length_logits(batch.prompt_ids, batch.prompt_mask))
