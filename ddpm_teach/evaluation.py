"""Measuring samples (notebooks 05-08, 12): a classifier trained on the data set supplies

* **classifier-FID**: the Fréchet distance between Gaussians fitted to the classifier's
  penultimate features of N samples and of the test set (Heusel et al. 2017, eq. 6, with a
  small domain-specific network in place of Inception), and
* **conditional accuracy**: the share of samples asked for class k that it classifies as k.

Every FID is reported with its N and the *real-vs-real floor*: the FID of N real training
images against the same test set, which is what a perfect generator would score at that N.

Each classifier checkpoint records the data set it was trained on (``"fashion_mnist"``, or an
image folder such as ``data/emoji`` with ``train/`` and ``test/``), so :meth:`Evaluator.load`
scores against that data set's test split, and :func:`find_classifier` picks the shipped
classifier that matches a diffusion checkpoint's images.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, load_state_dict_checked, save_checkpoint
from .devices import pick_device

__all__ = ["ClassifierConfig", "Classifier", "ClassifierTrainConfig", "train_classifier", "frechet_distance",
           "gaussian_stats", "Evaluator", "DEFAULT_CLASSIFIER", "SHIPPED_CLASSIFIERS", "find_classifier",
           "resolve_dataset"]

_REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLASSIFIER = _REPO / "checkpoints" / "fashion_mnist_classifier.pt"
# the shipped evaluation classifiers, one per data set (checkpoints/README.md)
SHIPPED_CLASSIFIERS = (DEFAULT_CLASSIFIER, _REPO / "checkpoints" / "emoji_classifier.pt")


@dataclass
class ClassifierConfig:
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    width: int = 32
    feature_dim: int = 128


class Classifier(nn.Module):
    """A small CNN: three conv stages (28→14→7→1 by pooling), then a feature layer whose output
    (``features``) is what FID compares, then the class logits."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = cfg = config or ClassifierConfig()
        w = cfg.width

        def stage(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(stage(cfg.in_channels, w), nn.MaxPool2d(2), stage(w, 2 * w), nn.MaxPool2d(2),
                                  stage(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_layer = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * w, cfg.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(cfg.feature_dim, cfg.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, feature_dim] of images [B, C, H, W] in [-1, 1]."""
        expected = (self.config.in_channels, self.config.image_size, self.config.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"the classifier takes images of shape [B, {expected[0]}, {expected[1]}, {expected[2]}], "
                             f"got {tuple(x.shape)}.")
        return self.feature_layer(self.body(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features [B, feature_dim] and logits [B, num_classes] from one pass."""
        features = self.features(x)
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]  # logits [B, num_classes]


@dataclass
class ClassifierTrainConfig:
    dataset: str = "fashion_mnist"      # a data set name, or an image folder with train/ and test/ (data/emoji)
    data_root: str | None = None
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"
    out: str = "checkpoints/fashion_mnist_classifier.pt"


def _shift_augment(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2,
                   background: float = -1.0) -> torch.Tensor:
    """Random horizontal flips and shifts of up to ``max_shift`` pixels, padding with
    ``background`` (-1: Fashion-MNIST's black; +1: the emoji's white)."""
    B, _, H, W = x.shape
    flip = torch.rand(B, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None].to(x.device), x.flip(-1), x)
    padded = F.pad(x, (max_shift,) * 4, value=background)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + H, dx:dx + W]


@torch.no_grad()
def _predict(model: Classifier, images: torch.Tensor, device, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of the classifier over ``images`` [N, C, H, W]: (features [N, D], logits [N, K]),
    float64 on the CPU."""
    model.eval()
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        f, logit = model.features_and_logits(images[start:start + batch_size].to(device))
        features.append(f.double().cpu())
        logits.append(logit.double().cpu())
    return torch.cat(features), torch.cat(logits)


def _fingerprint(*tensors: torch.Tensor) -> str:
    """A SHA-256 of the tensors' bytes: the key of the test-set feature cache."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _features_cache_dir() -> Path:
    base = os.environ.get("DDPM_TEACH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ddpm_teach"
    return Path(base) / "features"


def _cached_test_features(classifier: Classifier, images: torch.Tensor, device) -> torch.Tensor:
    """Classifier features of the test images, computed once per (classifier weights, images)
    and kept in ``$DDPM_TEACH_CACHE/features`` (default ``~/.cache/ddpm_teach``): the weights' hash
    is in the key, so a retrained classifier never reads an old file.  A cache that cannot be
    written is skipped."""
    from .data import to_model_range

    state = classifier.state_dict()
    path = _features_cache_dir() / f"{_fingerprint(*(state[k] for k in sorted(state)), images)}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)["features"]
        except Exception:  # a corrupt cache file: compute again, and write it anew
            pass
    features = _predict(classifier, to_model_range(images), device)[0]
    try:
        save_checkpoint({"kind": "features", "features": features}, path)
    except OSError:
        pass
    return features


def resolve_dataset(dataset: str) -> str:
    """A data set name as it is, or a folder: as given if it exists, else relative to the
    repository (a notebook runs in notebooks/, where ``data/emoji`` means the repository's)."""
    from .data import dataset_key

    if dataset_key(dataset) or Path(dataset).expanduser().exists():
        return str(dataset)
    in_repo = _REPO / dataset
    return str(in_repo) if in_repo.exists() else str(dataset)


def _check_split_layout(dataset: str) -> None:
    """An image folder used for evaluation must hold a held-out split (``train/`` and ``test/``)."""
    from .data import dataset_key, split_folder

    if dataset_key(dataset):
        return
    folder = Path(dataset).expanduser()
    if not folder.is_dir():
        raise ValueError(f"the data set {dataset} is not a folder or a known name; build it (for emoji: "
                         "`python -m ddpm_teach data emoji --out data/emoji`) or pass its folder (--dataset).")
    if split_folder(folder, True) == folder:
        raise ValueError(f"{folder} has no train/ and test/ sub-folders; a classifier for FID needs held-out images. "
                         "Split the class folders into FOLDER/train/<class>/ and FOLDER/test/<class>/.")


def train_classifier(config: ClassifierTrainConfig, train_data=None, test_data=None, progress: bool = True):
    """Train an evaluation classifier on ``config.dataset``'s training split: AdamW, one-cycle LR,
    flips and shifts; its accuracy is measured on the test split.
    Returns ``(model, test_accuracy, checkpoint_path)``."""
    from .data import load_dataset, to_model_range

    device = pick_device(config.device)
    if train_data is None or test_data is None:
        _check_split_layout(config.dataset)
    train_data = train_data or load_dataset(config.dataset, config.data_root, train=True)
    test_data = test_data or load_dataset(config.dataset, config.data_root, train=False)
    if list(train_data.classes) != list(test_data.classes):
        raise ValueError(f"the train and test splits of {config.dataset} have different classes "
                         f"({train_data.classes} vs {test_data.classes}); give both the same class sub-folders.")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = Classifier(ClassifierConfig(in_channels=train_data.channels, image_size=train_data.image_size,
                                        num_classes=len(train_data.classes))).to(device)
    steps_per_epoch = len(train_data) // config.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch)
    x_all, y_all = to_model_range(train_data.images), train_data.labels
    background = float(x_all[:, :, 0, :].mean().clamp(-1, 1).round())   # the top rows' colour: -1 black, +1 white
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        perm = torch.randperm(len(train_data), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"classifier epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
            x = _shift_augment(x_all[idx], generator, background=background).to(device)
            loss = F.cross_entropy(model(x), y_all[idx].to(device), label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    logits = _predict(model, to_model_range(test_data.images), device)[1]
    accuracy = (logits.argmax(1) == test_data.labels).double().mean().item()
    path = save_checkpoint({
        "kind": "classifier", "model_config": asdict(model.config), "model": model.state_dict(),
        "classes": list(train_data.classes), "dataset": config.dataset, "test_accuracy": accuracy,
        "test_n": len(test_data), "train_config": asdict(config),
        "train_seconds": time.perf_counter() - started,
    }, config.out)
    return model.eval(), accuracy, path


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D], in float64."""
    features = features.double()
    mean = features.mean(0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)   (Fréchet distance of two Gaussians).

    tr((Σ₁Σ₂)^½) is the sum of the square roots of the eigenvalues of Σ₁^½ Σ₂ Σ₁^½, which is
    symmetric positive semi-definite, so only symmetric eigendecompositions are needed."""
    mu1, mu2, sigma1, sigma2 = (a.double() for a in (mu1, mu2, sigma1, sigma2))
    evals1, evecs1 = torch.linalg.eigh(sigma1)
    sqrt_sigma1 = evecs1 @ torch.diag(evals1.clamp(min=0).sqrt()) @ evecs1.T
    middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_sqrt)


class Evaluator:
    """Scores images against the Fashion-MNIST test set with the shipped classifier::

        evaluator = Evaluator.load()             # checkpoints/fashion_mnist_classifier.pt
        scores = evaluator.score(images, labels) # {"n", "fid", "fid_floor", "accuracy", ...}
        print(evaluator.format_scores(scores))
    """

    def __init__(self, classifier: Classifier, test_data, train_data=None, device=None, seed: int = 0):
        self.device = pick_device(device)
        self.classifier = classifier.to(self.device).eval()
        self.classes = list(test_data.classes)
        self.train_data = train_data
        self.seed = seed
        self.test_features = _cached_test_features(self.classifier, test_data.images, self.device)  # [N_test, D]
        self.test_stats = gaussian_stats(self.test_features)
        self._floors: dict[int, float] = {}

    @classmethod
    def load(cls, path: str | Path | None = None, data_root: str | None = None, device=None,
             dataset: str | None = None) -> "Evaluator":
        """The classifier at ``path`` (default: the Fashion-MNIST one) and the test split of the data
        set it was trained on (``dataset`` overrides it, e.g. a copy of data/emoji elsewhere)."""
        from .data import load_dataset

        path = Path(path) if path else DEFAULT_CLASSIFIER
        ckpt = load_checkpoint(path, kind="classifier")
        model = Classifier(ClassifierConfig(**ckpt["model_config"]))
        load_state_dict_checked(model, ckpt["model"], str(path))
        dataset = resolve_dataset(dataset or ckpt.get("dataset", "fashion_mnist"))
        _check_split_layout(dataset)
        test = load_dataset(dataset, data_root, train=False)
        train = load_dataset(dataset, data_root, train=True)
        classes = ckpt.get("classes")
        if classes is not None and list(classes) != list(test.classes):
            raise ValueError(f"the classifier {path} knows the classes {list(classes)}, but {dataset} has "
                             f"{list(test.classes)}; pass the data set it was trained on (--dataset) or another --classifier.")
        shape = (model.config.in_channels, model.config.image_size, model.config.image_size)
        if tuple(test.images.shape[1:]) != shape:
            raise ValueError(f"the classifier {path} takes images {shape}, but {dataset}'s are "
                             f"{tuple(test.images.shape[1:])}; pass the data set it was trained on or another --classifier.")
        return cls(model, test, train, device=device)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Classifier features [N, D] (float64, CPU) of images [N, C, H, W] in [-1, 1]."""
        return _predict(self.classifier, images, self.device)[0]

    def fid(self, images: torch.Tensor) -> float:
        return self._fid_of_features(self.features(images))

    def _fid_of_features(self, features: torch.Tensor) -> float:
        return frechet_distance(*gaussian_stats(features), *self.test_stats)

    def fid_floor(self, n: int) -> float:
        """FID of n random real *training* images against the test set: the best score at this n
        (at most all of them: see :meth:`floor_n`)."""
        from .data import to_model_range

        if self.train_data is None:
            return math.nan
        n = self.floor_n(n)
        if n not in self._floors:
            g = torch.Generator().manual_seed(self.seed)
            idx = torch.randperm(len(self.train_data), generator=g)[:n]
            self._floors[n] = self.fid(to_model_range(self.train_data.images[idx]))
        return self._floors[n]

    def floor_n(self, n: int) -> int:
        """The N of the floor for n samples: n, or every training image if there are fewer."""
        return n if self.train_data is None else min(n, len(self.train_data))

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Share of images the classifier assigns to the class they were generated for."""
        return (_predict(self.classifier, images, self.device)[1].argmax(1) == labels.cpu()).double().mean().item()

    def score(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        """FID with its N and floor, the histogram of predicted classes, and with ``labels`` the
        conditional accuracy: all from one pass of the classifier over ``images``."""
        if images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got {tuple(images.shape)}.")
        n = images.shape[0]
        if n < 2:
            raise ValueError("FID needs at least 2 images (and is only meaningful for hundreds or more).")
        features, logits = _predict(self.classifier, images, self.device)
        predicted = logits.argmax(1)
        scores = {"n": n, "fid": self._fid_of_features(features), "fid_floor": self.fid_floor(n),
                  "fid_floor_n": self.floor_n(n)}
        if labels is not None:
            right = predicted == labels.cpu()
            scores["accuracy"] = right.double().mean().item()
            scores["accuracy_per_class"] = {name: right[labels.cpu() == k].double().mean().item()
                                            for k, name in enumerate(self.classes) if bool((labels == k).any())}
        scores["class_histogram"] = torch.bincount(predicted, minlength=len(self.classes)).tolist()
        return scores

    @staticmethod
    def format_scores(scores: dict) -> str:
        floor_n = scores.get("fid_floor_n", scores["n"])
        line = (f"N={scores['n']}  classifier-FID={scores['fid']:.3f}  "
                f"(real-vs-real floor at N={floor_n}: {scores['fid_floor']:.3f})")
        if "accuracy" in scores:
            line += f"  conditional accuracy={100 * scores['accuracy']:.1f}%"
        return line


def find_classifier(channels: int, image_size: int, classes: list[str] | None = None,
                    candidates=SHIPPED_CLASSIFIERS) -> Path:
    """The shipped classifier for images [channels, image_size, image_size] (and, when given,
    exactly these class names): what ``evaluate`` uses when no --classifier is passed.  None
    matching is a ValueError that says how to train one."""
    described = f"{channels}x{image_size}x{image_size} images" + (f" with classes {list(classes)}" if classes else "")
    for path in candidates:
        if not Path(path).is_file():
            continue
        ckpt = load_checkpoint(path, kind="classifier")
        config = ckpt["model_config"]
        if (config["in_channels"], config["image_size"]) != (channels, image_size):
            continue
        if classes is not None and list(ckpt.get("classes", [])) != list(classes):
            continue
        return Path(path)
    raise ValueError(f"no shipped classifier scores {described}; train one on the data set (with train/ and test/ "
                     "splits) with `python -m ddpm_teach train-classifier --dataset FOLDER --out FILE.pt` and pass "
                     "--classifier FILE.pt.")
