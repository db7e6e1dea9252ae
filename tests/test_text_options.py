"""The real-text options, each against its equation: interpolated x0 (I1), the shifted schedule (S1), the
condition-enhanced time (C1), encoder tables and encoder_init, and the adjacent-repeat block (B1)."""

import math

import pytest
import torch

from diffusion_lm.core import VPSchedule, schedule_from_config
from diffusion_lm.text.batching import encode_pairs
from diffusion_lm.text.generation_config import GenerationConfig
from diffusion_lm.text.length import past_the_end
from diffusion_lm.text.pipeline import DiffusionLMPipeline
from diffusion_lm.text.rollout import Rollout

from .text_helpers import generate, reverse_pairs, tiny_model


def _batch(tok, n=6, seed=0):
    pairs = reverse_pairs(n, seed)
    return encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)


def test_interpolated_x0_is_the_softmax_average_of_the_table():
    """(I1): x0_hat = softmax(logits) @ E, so it lies in the table's convex hull, and its logits are the network's
    (the table's term alone here: O1's is tested in test_learned_logits)."""
    model, tok = tiny_model(rounding_temperature=0.5, length_prediction=False, learned_logits=False)
    batch = _batch(tok)
    z, t = torch.randn(6, 8, 16), torch.rand(6)
    x0, logits = model.predict(batch.prompt_ids, batch.prompt_mask, z, t)
    raw = model.denoiser(model.embed(batch.prompt_ids), batch.prompt_mask, z, t)
    table = model.embedding_table / model.config.embedding_scale
    expected_logits = raw @ table.T / 0.5
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5)
    weights = torch.softmax(expected_logits.double(), -1)
    torch.testing.assert_close(x0.double(), weights @ table.double(), rtol=1e-5, atol=1e-5)
    # a rollout's sampling temperature T: softmax(logits / T) @ E, and a sharp one moves it to the argmax row
    for temperature in (0.5, 1e-4):
        rollout = Rollout(model, GenerationConfig(temperature=temperature), batch.prompt_ids, batch.prompt_mask)
        sharp = rollout.estimate(logits.clone())
        want = torch.softmax(expected_logits.double() / temperature, -1) @ table.double()
        torch.testing.assert_close(sharp.double(), want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sharp, table[logits.argmax(-1)], rtol=0, atol=1e-4)


def test_interpolated_loss_trains_the_interpolated_estimate():
    model, tok = tiny_model()
    batch = _batch(tok)
    out = model(**batch.as_kwargs(), generator=torch.Generator().manual_seed(0))
    x0 = model.embed(batch.response_ids)
    per_slot = (out.x0_pred - x0).pow(2).mean(-1)  # (122)
    written = batch.response_ids != model.config.pad_token_id
    assert torch.equal(per_slot[~written], torch.zeros(int((~written).sum()))), "held slots are the pad row (H1)"
    expected = (per_slot.sum(-1) / written.sum(-1)).mean()  # (H1): the mean over the written slots
    torch.testing.assert_close(out.loss_x0, expected, rtol=1e-5, atol=1e-6)
    assert out.x0_pred.abs().max() <= (model.embedding_table / model.config.embedding_scale).abs().max() + 1e-5


@pytest.mark.parametrize("shift", [-2.0, 1.5])
def test_shifted_schedule_moves_the_log_snr_and_keeps_variance(shift):
    """(S1): lambda'_t = lambda_t + s; alpha'^2 = sigmoid(2 lambda'); the shift survives a config round trip."""
    base = VPSchedule.sqrt()
    shifted = base.shifted(shift)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(shifted.log_snr(t), base.log_snr(t) + shift, rtol=0, atol=1e-12)
    torch.testing.assert_close(shifted.alpha(t) ** 2, torch.sigmoid(2 * (base.log_snr(t) + shift)),
                               rtol=1e-12, atol=1e-14)
    rebuilt = schedule_from_config(shifted.config())
    torch.testing.assert_close(rebuilt.sigma(t), shifted.sigma(t), rtol=0, atol=0)
    # the same path as data scaled by e^s under the unshifted schedule: x_t / sqrt(e^2s alpha^2 + sigma^2)
    a, s_ = base.alpha(t), base.sigma(t)
    scale = math.exp(shift)
    torch.testing.assert_close(shifted.alpha(t), scale * a / torch.sqrt(scale**2 * a**2 + s_**2),
                               rtol=1e-12, atol=1e-14)


def _spy_predict(model):
    """Record (t, z, x0_hat, self_cond) of every call of model.predict."""
    calls = []
    original = model.predict

    def spy(prompt_ids, prompt_mask, z, t, self_cond=None, **kwargs):
        out = original(prompt_ids, prompt_mask, z, t, self_cond, **kwargs)
        calls.append((t.clone(), z.clone(), out[0].clone(), None if self_cond is None else self_cond.clone()))
        return out

    model.predict = spy
    return calls


def test_option_values_are_checked():
    from diffusion_lm import DiffusionLMConfig

    for bad in (dict(position_embedding="soft"), dict(prompt_attention="left"), dict(embedding_normalization="x")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DiffusionLMConfig(**bad)


@pytest.mark.parametrize("name, value", [("x0_parameterization", "direct"),
                                         ("self_conditioning_source", "glancing"), ("rounding", "neg_sq_dist"),
                                         ("rollout_training", 0.5), ("t_sampling", "importance")])
def test_a_checkpoint_with_a_removed_option_is_refused_and_one_at_todays_behaviour_loads(name, value):
    """Removed options: a config.json that asks for one is refused with the reason; one that carries the value every
    model now has loads, the key dropped, and saves without it."""
    from diffusion_lm import DiffusionLMConfig
    from diffusion_lm.text.configuration import REMOVED

    with pytest.raises(ValueError, match=f"{name}={value!r} was an option"):
        DiffusionLMConfig(**{name: value})
    config = DiffusionLMConfig(**{name: REMOVED[name]})
    assert name not in config.to_dict()


def test_legacy_objective_keys_fold_into_the_objective_group():
    """config.json written before the objective group had lambda_x0, t_eps, prompt_dropout at its top level."""
    from diffusion_lm import DiffusionLMConfig

    config = DiffusionLMConfig(lambda_round=0.5, t_eps=0.01, prompt_dropout=0.1)
    objective = config.training_objective
    assert (objective.lambda_round, objective.t_eps, objective.prompt_dropout,
            objective.lambda_x0) == (0.5, 0.01, 0.1, 1.0)
    assert "t_eps" not in config.to_dict() and config.to_dict()["objective"]["t_eps"] == 0.01
    assert DiffusionLMConfig.from_dict(config.to_dict()).training_objective == objective
    with pytest.raises(ValueError, match="unknown objective setting"):
        DiffusionLMConfig(objective={"lamda_x0": 1.0})


def test_log_snr_offset_evaluates_the_denoiser_at_a_noisier_time():
    """(C1): at each step the denoiser's t is the time whose log-SNR is lambda_t - Delta (and t itself at Delta = 0)."""
    from diffusion_lm.text.generation_config import GenerationConfig

    model, tok = tiny_model(time_warping=False)
    batch = _batch(tok)
    for delta in (0.0, 2.5):
        calls = _spy_predict(model)
        seen_times = []
        generate(model, batch, GenerationConfig(num_steps=5, eta=0.0, log_snr_offset=delta),
                     generator=torch.Generator().manual_seed(0), callback=lambda info: seen_times.append(info["t"]))
        del model.predict
        grid = [1.0] + seen_times[:-1]  # the time of each evaluation: where each step starts
        sched = model.schedule
        for (t_model, *_), t in zip(calls, grid):
            lam = float(sched.log_snr(torch.tensor(t, dtype=torch.float64)))
            want = float(sched.t_from_log_snr(torch.tensor(lam - delta, dtype=torch.float64)))
            assert abs(float(t_model[0]) - want) < 1e-5, (delta, t, float(t_model[0]), want)
        if delta > 0:
            assert (all(float(c[0][0]) >= t - 1e-7 for c, t in zip(calls, grid))
                    and any(float(c[0][0]) > t + 1e-3 for c, t in zip(calls, grid)))


def test_encoder_init_makes_the_encoders_own_layers_the_denoiser(tmp_path):
    """TESS: the MiniLM encoder (offline copy) is the denoiser; its pretrained layers are loaded, trained, saved,
    reloaded."""
    from transformers import AutoModel

    from diffusion_lm import DiffusionLMConfig, DiffusionLMModel, build_model, minilm_path
    from diffusion_lm.text.batching import encode_pairs

    config = DiffusionLMConfig(embedding_source=str(minilm_path()), encoder_init=True, max_prompt_length=8,
                               max_response_length=8)
    model, tok = build_model(config)
    reference = AutoModel.from_pretrained(minilm_path())
    assert (model.config.hidden_size == reference.config.hidden_size
            and model.config.num_layers == reference.config.num_hidden_layers)
    ours = model.denoiser.encoder.encoder.layer[2].attention.self.query.weight
    torch.testing.assert_close(ours, reference.encoder.layer[2].attention.self.query.weight)
    batch = encode_pairs(tok, ["in the beginning", "let there be light"], ["at first", "light"], 8, 8)
    before = ours.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):  # the output layer starts at zero: the encoder's layers see a gradient from the second step
        out = model(**batch.as_kwargs(), generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert torch.isfinite(out.loss) and not torch.equal(before, ours.detach())
    model.save_pretrained(tmp_path)
    back = DiffusionLMModel.from_pretrained(tmp_path).eval()
    z, t = torch.randn(2, 8, model.config.embedding_dim), torch.rand(2)
    past = past_the_end(torch.tensor([3, 5]), 8)  # the length marker (L2) of the default model, saved with it
    torch.testing.assert_close(back.denoise(batch.prompt_ids, batch.prompt_mask, z, t, past=past),
                               model.eval().denoise(batch.prompt_ids, batch.prompt_mask, z, t, past=past),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how", ["l2", "layernorm"])
def test_embedding_normalization_of_an_encoder_table(how):
    from diffusion_lm import DiffusionLMConfig, build_model, minilm_path

    model, _ = build_model(DiffusionLMConfig(embedding_source=str(minilm_path()), embedding_normalization=how,
                                             hidden_size=32, num_layers=1, num_heads=2, max_prompt_length=4,
                                             max_response_length=4))
    table = model.embedding_table
    if how == "l2":
        norms = table.norm(dim=-1)
        torch.testing.assert_close(norms, torch.full_like(norms, table.shape[1] ** 0.5))
    else:
        torch.testing.assert_close(table.mean(-1), torch.zeros(table.shape[0]), rtol=0, atol=1e-5)
        torch.testing.assert_close(table.var(-1, unbiased=False), torch.ones(table.shape[0]), rtol=0, atol=1e-3)
    assert abs(model.config.embedding_scale - 1.0) < 1e-3


def test_encoder_init_needs_an_encoder_table():
    from diffusion_lm import DiffusionLMConfig

    with pytest.raises(ValueError, match="encoder_init fine-tunes the embedding_source encoder"):
        DiffusionLMConfig(encoder_init=True)


def test_block_adjacent_repeats_bars_the_second_copy_and_lets_pad_repeat():
    from diffusion_lm.text.repeats import block_adjacent_repeats

    # slots' first and second choices over a vocabulary of 5 (pad = 0): [3, 3, 3, 4, 0, 0] -> [3, 1, 3, 4, 0, 0]
    first, second = [3, 3, 3, 4, 0, 0], [2, 1, 2, 1, 2, 2]
    logits = torch.full((1, 6, 5), -5.0)
    for j, (a, b) in enumerate(zip(first, second)):
        logits[0, j, a], logits[0, j, b] = 2.0, 1.0
    blocked = block_adjacent_repeats(logits, pad_token_id=0)
    assert blocked.argmax(-1).tolist() == [[3, 1, 3, 4, 0, 0]]
    assert torch.isneginf(blocked[0, 1, 3]) and not torch.isinf(blocked[0, 2]).any()
    torch.testing.assert_close(blocked[0, 2:], logits[0, 2:])


def test_block_adjacent_repeats_looks_past_punctuation_to_the_last_word():
    from diffusion_lm.text.repeats import block_adjacent_repeats

    # vocabulary of 6 (pad = 0, 5 = ","): "3 , 3 , , 4 4" -> the second 3 falls to 2; ", ," still may not double;
    # a word after a comma may repeat the word two back only through punctuation ("3 , 2" is fine)
    first, second = [3, 5, 3, 5, 5, 4, 4], [1, 1, 2, 1, 1, 1, 2]
    logits = torch.full((1, 7, 6), -5.0)
    for j, (a, b) in enumerate(zip(first, second)):
        logits[0, j, a], logits[0, j, b] = 2.0, 1.0
    punctuation = torch.tensor([False, False, False, False, False, True])
    assert block_adjacent_repeats(logits, 0, punctuation).argmax(-1).tolist() == [[3, 5, 2, 5, 1, 4, 2]]
    assert block_adjacent_repeats(logits, 0).argmax(-1).tolist() == [[3, 5, 3, 5, 1, 4, 2]], "without it, adjacent only"


def test_block_adjacent_repeats_fallback_is_neither_the_neighbour_nor_the_last_word():
    from diffusion_lm.text.repeats import block_adjacent_repeats

    punctuation = torch.tensor([False, False, False, False, False, True])
    for first, second, third, want in (
            ([3, 5, 3], [1, 1, 5], [1, 1, 2], [3, 5, 2]),  # "that , that" -> not ", ," either
            ([3, 5, 5], [1, 1, 3], [1, 1, 2], [3, 5, 2])):  # ", ," -> not "that , that" either
        logits = torch.full((1, 3, 6), -5.0)
        for j, (a, b, c) in enumerate(zip(first, second, third)):
            logits[0, j, a], logits[0, j, b], logits[0, j, c] = 3.0, 2.0, 1.0
        assert block_adjacent_repeats(logits, 0, punctuation).argmax(-1).tolist() == [want]


def test_block_adjacent_repeats_counts_tokens_of_one_word_class_as_a_repeat():
    from diffusion_lm.text.repeats import block_adjacent_repeats

    same_word = torch.tensor([0, 1, 2, 3, 3, 5])  # tokens 3 and 4 are one word ("He", "he")
    logits = torch.full((1, 2, 6), -5.0)
    logits[0, 0, 3] = 2.0
    logits[0, 1, 4], logits[0, 1, 3], logits[0, 1, 2] = 3.0, 2.0, 1.0  # "he", then "He", then another word
    assert block_adjacent_repeats(logits, 0, same_word=same_word).argmax(-1).tolist() == [[3, 2]]
    assert block_adjacent_repeats(logits, 0).argmax(-1).tolist() == [[3, 4]], "without classes, only the same id"


def test_same_word_classes_group_case_but_not_subword_pieces():
    from diffusion_lm.text.tokenization import same_word_classes, train_tokenizer

    tok = train_tokenizer(["He said he would . The the"] * 20, kind="wordlevel", vocab_size=64, lowercase=False)
    classes = same_word_classes(tok)
    ids = tok.convert_tokens_to_ids
    assert classes[ids("He")] == classes[ids("he")] and classes[ids("The")] == classes[ids("the")]
    assert classes[ids("said")] != classes[ids("he")] and classes[ids("said")] == ids("said")


def test_block_adjacent_repeats_keeps_a_slot_whose_only_choice_is_barred():
    from diffusion_lm.text.repeats import block_adjacent_repeats

    logits = torch.full((1, 3, 5), float("-inf"))  # one-hot rows, as at the given slots of a template: "4 4 2"
    logits[0, 0, 4] = logits[0, 1, 4] = logits[0, 2, 2] = 0.0
    out = block_adjacent_repeats(logits, 0)
    assert out.argmax(-1).tolist() == [[4, 4, 2]] and torch.isfinite(out.max(-1).values).all()


def test_infilling_with_blocking_keeps_given_repeats_and_stays_finite():
    """A template's given "w5 w5" is kept though the block bars doubled words, and no estimate turns to inf or NaN
    (the one-hot given rows have only one finite choice, which the block must not bar)."""
    pipe = DiffusionLMPipeline(*tiny_model(seed=5))
    estimates = []
    out = pipe(["w1 w2"], response_template="w5 w5 [FILL:2]", block_adjacent_repeats=True, num_steps=3,
               callback=lambda info: estimates.append(info["x0"]))[0]
    assert out.split()[:2] == ["w5", "w5"] and len(out.split()) == 4
    assert len(estimates) == 3 and all(torch.isfinite(x0).all() for x0 in estimates)


def test_punctuation_mask_marks_punctuation_tokens_only():
    from diffusion_lm.text.tokenization import punctuation_mask, train_tokenizer

    tok = train_tokenizer(["and he said , behold ; the end : . ( yes ) ! why ? -"] * 3, kind="wordlevel", vocab_size=64)
    marked = {tok.convert_ids_to_tokens(i) for i in punctuation_mask(tok).nonzero().squeeze(-1).tolist()}
    assert marked == {",", ";", ":", "-"}, "pauses only: a sentence end may be followed by the same word"


def test_block_adjacent_repeats_in_the_rollout_and_the_final_rounding():
    """Every x0_hat of the rollout is built from logits whose argmax never repeats; the output has no doubled token."""
    from .text_helpers import WORDS

    model, tok = tiny_model()
    batch = _batch(tok)
    pad = model.config.pad_token_id
    with torch.no_grad():  # a table where almost every slot rounds to the same word: repeats everywhere unless blocked
        model.denoiser.out.bias.copy_(model.embedding_table[tok.convert_tokens_to_ids(WORDS[0])]
                                      / model.config.embedding_scale * 4)
    seen = []
    original = model.predict

    def spy(*args, written=None, **kwargs):  # the argmax (B, N) of the held logits each x0_hat is formed from
        x0, logits = original(*args, written=written, **kwargs)
        top = logits.argmax(-1)
        if written is not None:  # packed (M,): the slots past the length are pad
            top = torch.full(written.shape, pad, dtype=torch.long).masked_scatter(written, top)
        seen.append(top)
        return x0, logits

    model.predict = spy

    def repeats(ids):
        return ((ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] != pad)).sum().item()

    plain = generate(model, batch, num_steps=4, generator=torch.Generator().manual_seed(0))
    assert repeats(plain) > 0, "the check needs a model that repeats"
    seen.clear()
    ids = generate(model, batch, num_steps=4, block_adjacent_repeats=True,
                       length_candidates=1, generator=torch.Generator().manual_seed(0))
    # one estimate per step, blocked
    assert repeats(ids) == 0 and len(seen) == 4 and all(repeats(s) == 0 for s in seen)
