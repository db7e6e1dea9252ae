"""Measuring a digits model: guided generation, class accuracy under a separate judge, diversity, bits per dim."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import bits_per_dim, classifier_free, classifier_guidance, log_likelihood, sample
from .classifier import NoisyClassifier, log_prob_grad
from .digits import DATA_WIDTH, IMAGE_SHAPE, LEVELS, NUM_CLASSES, DigitsSplit, bin_centres, dequantize
from .unet import DigitsUNet

GUIDANCE = ("none", "cfg", "classifier")


class Judge:
    """The separate classifier that scores generated digits: scikit-learn's RBF support vector machine
    trained on clean training images. Not differentiable and unrelated to the guidance classifier,
    so guided samples cannot fool it through shared gradients.
    """

    def __init__(self, train: DigitsSplit, c: float = 10.0):
        from sklearn.svm import SVC

        self.svm = SVC(C=c, gamma="scale").fit(self._features(train.levels), train.labels.numpy())

    @staticmethod
    def _features(levels: Tensor):
        return (levels.reshape(len(levels), -1).float() / (LEVELS - 1)).numpy()

    def predict(self, levels: Tensor) -> Tensor:
        return torch.as_tensor(self.svm.predict(self._features(levels)), dtype=torch.int64)

    def accuracy(self, levels: Tensor, labels: Tensor) -> float:
        return float((self.predict(levels) == labels).float().mean())


def guided_model(
    model: DigitsUNet,
    labels: Tensor,
    guidance: str,
    scale: float,
    classifier: NoisyClassifier | None = None,
):
    """The core's ``model(x, t)`` for ``labels`` (B,): conditional (``none``), classifier-free guided
    ``(1 + w) eps(x, t, y) - w eps(x, t, null)`` (62), or the unconditional model with classifier
    guidance ``eps - w sigma_t grad log p_phi(y | x_t)`` (57)."""
    if guidance not in GUIDANCE:
        raise ValueError(f"unknown guidance {guidance!r}; valid choices are: {', '.join(GUIDANCE)}.")
    if guidance == "none":
        return model.conditional(labels)
    if guidance == "cfg":
        return classifier_free(model.conditional(labels), model.unconditional(len(labels)), scale)
    if classifier is None:
        raise ValueError("classifier guidance needs the noisy classifier; pass classifier=...")
    return classifier_guidance(model.unconditional(len(labels)), log_prob_grad(classifier, labels), scale,
                               model.schedule, model.prediction)


def generate(
    model: DigitsUNet,
    labels: Tensor,
    *,
    guidance: str = "cfg",
    scale: float = 0.0,
    classifier: NoisyClassifier | None = None,
    method: str = "dpm_solver++",
    steps: int = 25,
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
) -> Tensor:
    """Images in model space (B, 1, 8, 8) for ``labels`` (B,), sampled from t = 1 to 0 with a core sampler."""
    schedule = model.schedule
    if x_T is None:
        x_T = float(schedule.sigma(1.0)) * torch.randn(len(labels), *IMAGE_SHAPE, generator=generator)
    fn = guided_model(model, labels, guidance, scale, classifier)
    return sample(fn, x_T, schedule, method=method, steps=steps, prediction=model.prediction, t_end=0.0,
                  generator=generator)


def within_class_distance(x: Tensor, labels: Tensor) -> float:
    """Mean L2 distance between two different images of the same class, averaged over classes."""
    per_class = []
    flat = x.reshape(len(x), -1).double()
    for c in labels.unique().tolist():
        rows = flat[labels == c]
        if len(rows) < 2:
            continue
        d = torch.cdist(rows, rows)
        per_class.append(float(d.sum() / (len(rows) * (len(rows) - 1))))
    return sum(per_class) / len(per_class)


def diversity(levels: Tensor, labels: Tensor, reference: DigitsSplit) -> float:
    """Within-class distance of generated images over that of real ones (bin centres): 1 is as diverse as data."""
    return within_class_distance(bin_centres(levels), labels) / within_class_distance(
        bin_centres(reference.levels), reference.labels)


def heldout_bits_per_dim(
    model: DigitsUNet,
    test: DigitsSplit,
    *,
    conditional: bool = False,
    divergence: str = "hutchinson",
    tol: float = 1e-4,
    batch_size: int = 200,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Bits per dimension of uniformly dequantised test images under the PF-ODE density of the model.

    ``-log p(x) / (64 ln 2)`` shifted to bins of width 2/17 (``bits_per_dim(..., data_width=2, bins=17)``):
    an upper bound on the discrete negative log-likelihood of the 17-level test images. Unconditional
    (null label) unless ``conditional``; Hutchinson's divergence by default (one Rademacher probe per image).
    """
    x0 = dequantize(test.levels, generator)
    labels = test.labels if conditional else torch.full((len(test),), model.null_label, dtype=torch.int64)
    bpd = []
    for xs, ys in zip(x0.split(batch_size), labels.split(batch_size)):
        logp = log_likelihood(model.conditional(ys), xs, model.schedule, prediction=model.prediction,
                              divergence=divergence, rtol=tol, atol=tol, generator=generator)
        bpd.append(bits_per_dim(logp, xs[0].numel(), data_width=DATA_WIDTH, bins=LEVELS))
    bpd = torch.cat(bpd)
    return {"bits_per_dim": float(bpd.mean()), "bits_per_dim_se": float(bpd.std() / len(bpd) ** 0.5)}


def class_labels(per_class: int) -> Tensor:
    """0, ..., 0, 1, ..., 9: ``per_class`` of each label."""
    return torch.arange(NUM_CLASSES).repeat_interleave(per_class)
