"""Evaluation (notebooks 05-08): the Fréchet distance against scipy, Gaussian statistics against
numpy, and the Evaluator's scores (N, FID, its real-vs-real floor, conditional accuracy)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.data import ImageData, to_model_range
from ddpm_teach.evaluation import Classifier, ClassifierConfig, Evaluator, frechet_distance, gaussian_stats

scipy_linalg = pytest.importorskip("scipy.linalg")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _random_covariance(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((d, rank or d + 3))
    return a @ a.T / a.shape[1]


def _scipy_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula with scipy's matrix square root (as pytorch-fid computes it)."""
    covmean = scipy_linalg.sqrtm(sigma1 @ sigma2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# -- the Fréchet distance --------------------------------------------------------------------------

@pytest.mark.parametrize("d, seed", [(2, 0), (5, 1), (12, 2)])
def test_frechet_distance_matches_scipy(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    sigma1, sigma2 = _random_covariance(rng, d), _random_covariance(rng, d)
    ours = frechet_distance(*(torch.from_numpy(a) for a in (mu1, sigma1, mu2, sigma2)))
    assert ours == pytest.approx(_scipy_frechet(mu1, sigma1, mu2, sigma2), rel=1e-8, abs=1e-10)
    # symmetric in its two Gaussians
    assert frechet_distance(*(torch.from_numpy(a) for a in (mu2, sigma2, mu1, sigma1))) == pytest.approx(ours, rel=1e-8)


def test_frechet_distance_with_singular_covariances():
    """Fewer samples than feature dimensions (small N) give rank-deficient covariances."""
    rng = np.random.default_rng(3)
    d = 8
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    sigma1, sigma2 = _random_covariance(rng, d, rank=3), _random_covariance(rng, d, rank=5)
    ours = frechet_distance(*(torch.from_numpy(a) for a in (mu1, sigma1, mu2, sigma2)))
    assert ours == pytest.approx(_scipy_frechet(mu1, sigma1, mu2, sigma2), rel=1e-6, abs=1e-8)


def test_frechet_distance_of_a_gaussian_to_itself_is_zero():
    rng = np.random.default_rng(4)
    mu, sigma = torch.from_numpy(rng.standard_normal(10)), torch.from_numpy(_random_covariance(rng, 10))
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    assert frechet_distance(mu, sigma, mu, 2 * sigma) > 0.1


def test_frechet_distance_translation_term_is_exact():
    """Equal covariances leave only ‖μ₁ − μ₂‖²; and the trace term does not depend on the means."""
    rng = np.random.default_rng(5)
    sigma = torch.from_numpy(_random_covariance(rng, 6))
    mu = torch.from_numpy(rng.standard_normal(6))
    shift = torch.from_numpy(rng.standard_normal(6))
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(float((shift ** 2).sum()), rel=1e-9)
    assert frechet_distance(mu, sigma, mu + 3.0, sigma) == pytest.approx(9.0 * 6, rel=1e-9)
    other = torch.from_numpy(_random_covariance(rng, 6))
    base = frechet_distance(mu, sigma, mu, other)
    assert frechet_distance(mu, sigma, mu + shift, other) == pytest.approx(base + float((shift ** 2).sum()), rel=1e-9)


def test_gaussian_stats_match_numpy():
    rng = np.random.default_rng(6)
    features = rng.standard_normal((50, 7)) @ rng.standard_normal((7, 7)) + rng.standard_normal(7)
    mean, cov = gaussian_stats(torch.from_numpy(features).float())
    assert mean.dtype == torch.float64 and cov.shape == (7, 7)
    np.testing.assert_allclose(mean.numpy(), features.astype(np.float32).mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cov.numpy(), np.cov(features.astype(np.float32), rowvar=False), rtol=1e-5, atol=1e-6)


# -- the Evaluator ---------------------------------------------------------------------------------

def _structured_data(n: int, seed: int, size: int = 8, num_classes: int = 3) -> ImageData:
    """Images that differ in brightness and in a vertical ramp (uniform noise would all look alike
    to a small CNN after its global average pooling)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    level = torch.rand(n, 1, 1, 1, generator=g) * 255
    ramp = torch.linspace(-1, 1, size)[None, None, :, None] * torch.randn(n, 1, 1, 1, generator=g) * 60
    noise = torch.randn(n, 1, size, size, generator=g) * 20
    images = (level + ramp + noise).round().clamp(0, 255).to(torch.uint8)
    return ImageData(images, labels, [f"c{k}" for k in range(num_classes)], "structured")


def _tiny_classifier(num_classes: int = 3, size: int = 8) -> Classifier:
    """An untrained small classifier whose BatchNorm statistics are calibrated on some images, so
    that its features vary from image to image (at init they are almost constant)."""
    torch.manual_seed(1)
    model = Classifier(ClassifierConfig(in_channels=1, image_size=size, num_classes=num_classes, width=4,
                                        feature_dim=6))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None              # a plain average over the calibration batch
    model.train()
    with torch.no_grad():
        model.body(to_model_range(_structured_data(256, 99, size=size).images))
    return model.eval()


def _images_whose_class_is_their_brightness(labels: torch.Tensor, size: int = 8) -> torch.Tensor:
    """Image i is flat grey at 100·label_i, so its class can be read off any pixel."""
    return to_model_range((labels * 100).to(torch.uint8)[:, None, None, None].expand(len(labels), 1, size, size))


def _brightness_classifier(num_classes: int, features):
    """A stand-in for the classifier's one pass: logits that pick class round(pixel/100), and
    the real classifier's ``features``."""
    def features_and_logits(x):
        k = ((x[:, 0, 0, 0] + 1) * 127.5 / 100).round().long()
        return features(x), torch.nn.functional.one_hot(k, num_classes).float() * 10
    return features_and_logits


@pytest.fixture
def evaluator():
    test = _structured_data(64, seed=10)
    train = _structured_data(n=96, seed=11)
    return Evaluator(_tiny_classifier(), test, train_data=train, device="cpu")


def test_score_returns_n_fid_floor_and_accuracy(evaluator):
    images = to_model_range(_structured_data(n=20, seed=12).images)
    labels = torch.arange(20) % 3
    scores = evaluator.score(images, labels)
    assert scores["n"] == 20
    assert math.isfinite(scores["fid"]) and scores["fid"] >= -1e-9
    assert math.isfinite(scores["fid_floor"]) and scores["fid_floor"] >= -1e-9
    assert 0.0 <= scores["accuracy"] <= 1.0
    assert sum(scores["class_histogram"]) == 20 and len(scores["class_histogram"]) == 3
    # the floor is the FID of N real images: deterministic, and it depends on N
    assert evaluator.fid_floor(20) == scores["fid_floor"]
    assert "accuracy" not in evaluator.score(images)


def test_fid_of_the_test_set_against_itself_is_zero(evaluator):
    test = _structured_data(64, seed=10)
    assert abs(evaluator.fid(to_model_range(test.images))) < 1e-8
    assert evaluator.fid(to_model_range(_structured_data(n=64, seed=13).images)) > 1e-6


def test_fid_floor_with_all_the_test_images_as_real_images_is_zero():
    test = _structured_data(n=48, seed=10)
    evaluator = Evaluator(_tiny_classifier(), test, train_data=test, device="cpu")
    assert abs(evaluator.fid_floor(48)) < 1e-8        # a permutation of the same images: same statistics
    assert evaluator.fid_floor(10) > 1e-6
    assert math.isnan(Evaluator(_tiny_classifier(), test, train_data=None, device="cpu").fid_floor(10))


def test_accuracy_of_perfectly_classified_images_is_one(evaluator, monkeypatch):
    monkeypatch.setattr(evaluator.classifier, "features_and_logits",
                        _brightness_classifier(3, evaluator.classifier.features))
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 1])
    images = _images_whose_class_is_their_brightness(labels)
    assert evaluator.accuracy(images, labels) == 1.0
    assert evaluator.accuracy(images, (labels + 1) % 3) == 0.0
    half = labels.clone()
    half[:4] = (half[:4] + 1) % 3
    assert evaluator.accuracy(images, half) == 0.5
    scores = evaluator.score(images, labels)
    assert scores["accuracy"] == 1.0
    assert scores["class_histogram"] == torch.bincount(labels, minlength=3).tolist()


def test_format_scores_states_n_and_the_floor(evaluator):
    images = to_model_range(_structured_data(n=12, seed=14).images)
    scores = evaluator.score(images, torch.zeros(12, dtype=torch.long))
    line = Evaluator.format_scores(scores)
    assert "N=12" in line and "floor" in line
    assert f"{scores['fid']:.3f}" in line and f"{scores['fid_floor']:.3f}" in line
    assert "accuracy" in line
    assert "accuracy" not in Evaluator.format_scores({k: v for k, v in scores.items() if k != "accuracy"})


def test_wrong_image_shape_is_a_clear_error(evaluator):
    with pytest.raises(ValueError, match=r"\[B, 1, 8, 8\]"):
        evaluator.score(torch.zeros(4, 1, 9, 9))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        evaluator.score(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        evaluator.score(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError):
        evaluator.features(torch.zeros(4, 3, 8, 8))


def test_classifier_shapes():
    model = _tiny_classifier(num_classes=5, size=8).eval()
    x = torch.zeros(3, 1, 8, 8)
    assert model.features(x).shape == (3, 6) and model(x).shape == (3, 5)
    full = Classifier().eval()                        # the default: Fashion-MNIST, 28×28, 10 classes
    assert full(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_test_set_features_are_cached_by_classifier_hash(tmp_path, monkeypatch):
    """The test set's features are computed once per (classifier weights, test images) and read
    back from the cache after that; other weights, or a corrupt or unwritable cache, compute anew."""
    import ddpm_teach.evaluation as evaluation

    monkeypatch.setenv("DDPM_TEACH_CACHE", str(tmp_path / "cache"))
    test = _structured_data(64, seed=10)
    passes = []
    real_predict = evaluation._predict

    def counting_predict(model, images, device, **kwargs):
        passes.append(len(images))
        return real_predict(model, images, device, **kwargs)

    monkeypatch.setattr(evaluation, "_predict", counting_predict)
    first = Evaluator(_tiny_classifier(), test, device="cpu")
    assert passes == [64]
    files = list((tmp_path / "cache" / "features").glob("*.pt"))
    assert len(files) == 1
    second = Evaluator(_tiny_classifier(), test, device="cpu")        # same weights (same seed)
    assert passes == [64]                                              # no second pass over the test set
    assert torch.equal(first.test_features, second.test_features)
    assert torch.equal(first.test_features, real_predict(first.classifier, to_model_range(test.images), "cpu")[0])

    other = _tiny_classifier()
    with torch.no_grad():
        next(other.parameters()).add_(0.1)                            # other weights: another key
    Evaluator(other, test, device="cpu")
    assert passes == [64, 64] and len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 2

    files[0].write_bytes(b"not a checkpoint")                          # corrupt: computed again and rewritten
    assert torch.equal(Evaluator(_tiny_classifier(), test, device="cpu").test_features, first.test_features)
    assert passes == [64, 64, 64]
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("DDPM_TEACH_CACHE", str(blocked))              # cannot be a folder: the cache is skipped
    assert torch.equal(Evaluator(_tiny_classifier(), test, device="cpu").test_features, first.test_features)


def test_score_runs_the_classifier_once(evaluator, monkeypatch):
    import ddpm_teach.evaluation as evaluation

    passes = []
    real_predict = evaluation._predict
    monkeypatch.setattr(evaluation, "_predict", lambda *a, **k: passes.append(1) or real_predict(*a, **k))
    evaluator._floors[20] = 0.0                                        # the floor is cached per N: leave it out
    scores = evaluator.score(to_model_range(_structured_data(n=20, seed=12).images), torch.arange(20) % 3)
    assert len(passes) == 1 and "accuracy" in scores and "class_histogram" in scores
