"""Downstream value of synthetic data: train a classifier on it, validate and test on real data.

The protocol (METHOD.md §5): a classifier trained from scratch (the reference uses a CIFAR-style
ResNet-18; :class:`SmallCNN` is a fast stand-in for quick runs), Adam (lr 1e-3, batch 64),
ReduceLROnPlateau (patience 5) and early stopping on the *real* validation loss, best-validation
weights restored, images scaled to [-1, 1]. For an ensemble, each training draw picks a member
uniformly and then one of its images, about |real train| draws per epoch. Test metrics on the real
test split: accuracy, precision, recall, specificity, F1, g-mean = sqrt(recall * specificity) and
ROC AUC (binary: positive class 1; multi-class: macro one-vs-rest), repeated over seeds.

:func:`build_arms` makes the standard comparison (real data, G*, every single generator, all
generators pooled, random ensembles of |G*| members), :func:`compare` runs it, :func:`summarize`
gives mean ± std per arm and :func:`plot_comparison` draws it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from zoo.device import resolve_device
from zoo.io import atomic_write
from zoo.seeding import derive_seed

__all__ = [
    "METRICS",
    "SAMPLERS",
    "SmallCNN",
    "ResNet18Cifar",
    "register_classifier",
    "list_classifiers",
    "create_classifier",
    "TrainingSource",
    "TrainedClassifier",
    "epoch_indices",
    "train_classifier",
    "predict_proba",
    "classification_metrics",
    "evaluate_classifier",
    "run_protocol",
    "compare",
    "summarize",
    "build_arms",
    "plot_comparison",
    "resize_images",
]

log = logging.getLogger(__name__)

METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "g_mean", "roc_auc")
SAMPLERS = ("shuffle", "uniform", "member")


# --------------------------------------------------------------------------- classifiers


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: a few seconds per epoch of 28x28 images on a CPU."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32,
                 dropout: float = 0.2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(in_channels, width), nn.MaxPool2d(2),
            block(width, 2 * width), nn.MaxPool2d(2),
            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18Cifar(nn.Module):
    """ResNet-18, CIFAR style: 3x3 stride-1 stem, no max-pool (the reference classifier)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


_CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {}


def register_classifier(name: str, factory: Callable[..., nn.Module]) -> None:
    """Register ``factory(in_channels=, num_classes=) -> nn.Module`` under ``name``."""
    _CLASSIFIERS[name] = factory


def list_classifiers() -> list[str]:
    """Names accepted by :func:`create_classifier`."""
    return sorted(_CLASSIFIERS)


def create_classifier(name: str, in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """A freshly initialised classifier (seed torch first for a reproducible initialisation)."""
    if name not in _CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(list_classifiers())}")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    return _CLASSIFIERS[name](in_channels=in_channels, num_classes=num_classes)


register_classifier("small-cnn", SmallCNN)
register_classifier("resnet18-cifar", ResNet18Cifar)


# --------------------------------------------------------------------------- training data


@dataclass
class TrainingSource:
    """Training images for one arm, and how an epoch draws from them.

    ``groups`` (int ``(N,)``, optional): the member each image came from. ``sampler``:
    ``"shuffle"`` (a permutation of all images per epoch), ``"uniform"`` (draws with replacement)
    or ``"member"`` (each draw picks a group uniformly, then one of its images; needs ``groups``);
    None picks ``"member"`` when there are groups, else ``"shuffle"``. ``samples_per_epoch``:
    draws per epoch (default: all images).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    samples_per_epoch: int | None = None
    sampler: str | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ensemble.data import validate_images

        self.images = validate_images(self.images, "training images")
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} training images but {len(self.labels)} labels")
        if self.groups is not None:
            self.groups = np.asarray(self.groups).reshape(-1).astype(np.int64)
            if len(self.groups) != len(self.images):
                raise ValueError(f"groups has {len(self.groups)} entries for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_dataset(cls, ds, name: str | None = None, **kwargs) -> TrainingSource:
        """All images of an :class:`ensemble.data.Dataset`, shuffled each epoch."""
        return cls(ds.images, ds.labels, name=name or ds.name, **kwargs)

    @classmethod
    def from_samples(cls, samples, name: str = "synthetic", **kwargs) -> TrainingSource:
        """Synthetic samples; draws pick a member uniformly, then an image (METHOD §5)."""
        return cls(samples.images, samples.labels, groups=samples.groups, name=name,
                   meta={"members": samples.members}, **kwargs)


def _as_source(obj) -> TrainingSource:
    from ensemble.synthesis.sample import SyntheticSamples

    if isinstance(obj, TrainingSource):
        return obj
    if isinstance(obj, SyntheticSamples):
        return TrainingSource.from_samples(obj)
    if isinstance(obj, tuple) and len(obj) == 2:
        return TrainingSource(*obj)
    if hasattr(obj, "images") and hasattr(obj, "labels"):
        return TrainingSource.from_dataset(obj)
    raise ValueError(
        f"cannot train on {type(obj).__name__}; pass a TrainingSource, a Dataset, SyntheticSamples "
        "or an (images, labels) tuple"
    )


def _as_arrays(obj, what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(obj, tuple) and len(obj) == 2:
        return np.asarray(obj[0]), np.asarray(obj[1]).reshape(-1)
    if hasattr(obj, "images") and hasattr(obj, "labels"):
        return obj.images, np.asarray(obj.labels).reshape(-1)
    raise ValueError(f"{what} must be a Dataset or an (images, labels) tuple, got {type(obj).__name__}")


def epoch_indices(n: int, rng: np.random.Generator, *, size: int | None = None,
                  sampler: str = "shuffle", groups: np.ndarray | None = None) -> np.ndarray:
    """Indices of the images drawn in one epoch (pure; see :class:`TrainingSource`)."""
    size = n if size is None else int(size)
    if size < 1 or n < 1:
        raise ValueError(f"an epoch needs at least one image; got {n} images and {size} draws")
    if sampler == "shuffle":
        reps = -(-size // n)
        return np.concatenate([rng.permutation(n) for _ in range(reps)])[:size]
    if sampler == "uniform":
        return rng.integers(0, n, size=size)
    if sampler == "member":
        if groups is None:
            raise ValueError("sampler 'member' needs groups: the member index of every image")
        order = np.argsort(groups, kind="stable")
        present, starts, counts = np.unique(groups[order], return_index=True, return_counts=True)
        g = rng.integers(0, len(present), size=size)
        within = np.floor(rng.random(size) * counts[g]).astype(np.int64)
        return order[starts[g] + np.minimum(within, counts[g] - 1)]
    raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")


def resize_images(images: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """uint8 images resized to ``size`` (``H`` or ``(H, W)``) with Pillow's bilinear filter.

    For comparing with generators trained at another size (the reference resized MedMNIST's 28 px
    to 32 px); channels are kept.
    """
    from PIL import Image

    h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if images.shape[1:3] == (h, w):
        return images
    out = np.empty((len(images), h, w, *images.shape[3:]), dtype=np.uint8)
    for i, im in enumerate(images):
        out[i] = np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR))
    return out


def _to_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(n, H, W)`` / ``(n, H, W, C)`` to float ``(n, C, H, W)`` in [-1, 1]."""
    x = x_uint8.float().div_(127.5).sub_(1.0)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- training


@dataclass
class TrainedClassifier:
    """A trained network with its best-validation weights loaded, and how it got there."""

    module: nn.Module
    num_classes: int
    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    seconds: float
    model: str = ""
    device: str = "cpu"

    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        return predict_proba(self.module, images, batch_size=batch_size)


def _device_of(module: nn.Module) -> torch.device:
    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def predict_proba(model: nn.Module | TrainedClassifier, images: np.ndarray,
                  batch_size: int = 512) -> np.ndarray:
    """Class probabilities ``(n, num_classes)`` float64 for uint8 images (eval mode)."""
    from ensemble.data import validate_images

    module = model.module if isinstance(model, TrainedClassifier) else model
    images = validate_images(np.asarray(images), "images")
    dev = _device_of(module)
    was_training = module.training
    module.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = _to_input(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(dev))
        out.append(torch.softmax(module(x).float(), dim=1).cpu().double().numpy())
    module.train(was_training)
    return np.concatenate(out)


@torch.no_grad()
def _loss_and_accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       batch_size: int) -> tuple[float, float]:
    module.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = module(_to_input(x[i:i + batch_size]))
        total += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return total / len(x), correct / len(x)


def train_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                     val_images: np.ndarray, val_labels: np.ndarray, *,
                     model: str = "small-cnn", num_classes: int | None = None, epochs: int = 100,
                     batch_size: int = 64, lr: float = 1e-3, patience: int = 10,
                     lr_patience: int = 5, lr_factor: float = 0.1, seed: int = 0,
                     device: str = "auto", samples_per_epoch: int | None = None,
                     sampler: str | None = None, groups: np.ndarray | None = None,
                     progress: bool = True) -> TrainedClassifier:
    """Train ``model`` from scratch; early stopping on the real validation loss.

    Adam(``lr``), ReduceLROnPlateau(``lr_patience``, ``lr_factor``) on the validation loss, stop
    after ``patience`` epochs without improvement, best-validation weights restored. Each epoch
    draws ``samples_per_epoch`` images (default: all) with ``sampler`` (see
    :class:`TrainingSource`; ``groups`` gives each image's member for ``"member"``). The seed fixes
    the initialisation, the draws and dropout.
    """
    from ensemble.data import validate_images

    src = TrainingSource(train_images, train_labels, groups=groups,
                         samples_per_epoch=samples_per_epoch, sampler=sampler)
    val_x = validate_images(np.asarray(val_images), "validation images")
    val_y = np.asarray(val_labels).reshape(-1).astype(np.int64)
    if len(val_y) != len(val_x):
        raise ValueError(f"{len(val_x)} validation images but {len(val_y)} labels")
    if val_x.shape[1:] != src.images.shape[1:]:
        raise ValueError(
            f"training images are {src.images.shape[1:]} but validation images are {val_x.shape[1:]}; "
            "resize one set to the other's size"
        )
    k = int(num_classes or max(int(src.labels.max()), int(val_y.max())) + 1)
    k = max(k, 2)
    for what, y in (("training", src.labels), ("validation", val_y)):
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"{what} labels must lie in [0, {k}); found {int(y.min())}..{int(y.max())}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    smp = src.sampler or ("member" if src.groups is not None else "shuffle")
    if smp not in SAMPLERS:
        raise ValueError(f"unknown sampler {smp!r}; known: {', '.join(SAMPLERS)}")
    if smp == "member" and src.groups is None:
        raise ValueError("sampler 'member' needs groups: the member index of every image")

    dev = resolve_device(device)
    in_ch = 1 if src.images.ndim == 3 else src.images.shape[-1]
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(derive_seed(seed, "downstream", "init") % (2**63))
        net = create_classifier(model, in_channels=in_ch, num_classes=k).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=lr_factor,
                                                           patience=lr_patience)
        rng = np.random.default_rng(derive_seed(seed, "downstream", "draws"))
        tx = torch.from_numpy(np.ascontiguousarray(src.images)).to(dev)
        ty = torch.from_numpy(src.labels).to(dev)
        vx = torch.from_numpy(np.ascontiguousarray(val_x)).to(dev)
        vy = torch.from_numpy(val_y).to(dev)

        from tqdm.auto import tqdm

        best_loss, best_state, best_epoch, bad = math.inf, None, 0, 0
        rows = []
        bar = tqdm(range(1, int(epochs) + 1), desc=f"train {model}", unit="epoch",
                   disable=not progress, leave=False)
        for epoch in bar:
            net.train()
            idx = epoch_indices(len(src), rng, size=src.samples_per_epoch, sampler=smp,
                                groups=src.groups)
            idx_t = torch.from_numpy(idx).to(dev)
            run_loss, seen = 0.0, 0
            for i in range(0, len(idx_t), batch_size):
                b = idx_t[i:i + batch_size]
                if len(b) < 2:  # BatchNorm cannot train on a batch of one
                    continue
                logits = net(_to_input(tx[b]))
                loss = F.cross_entropy(logits, ty[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                run_loss += loss.item() * len(b)
                seen += len(b)
            val_loss, val_acc = _loss_and_accuracy(net, vx, vy, 512)
            lr_now = opt.param_groups[0]["lr"]
            sched.step(val_loss)
            rows.append({"epoch": epoch, "train_loss": run_loss / max(seen, 1), "val_loss": val_loss,
                         "val_accuracy": val_acc, "lr": lr_now})
            bar.set_postfix(val_loss=f"{val_loss:.4f}", best=best_epoch)
            if val_loss < best_loss:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    log.info("early stop at epoch %d (best %d, val loss %.4f)", epoch, best_epoch, best_loss)
                    break
        bar.close()
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
    return TrainedClassifier(net, k, pd.DataFrame(rows), best_epoch, float(best_loss), len(rows),
                             time.perf_counter() - t0, model, str(dev))


# --------------------------------------------------------------------------- metrics


def classification_metrics(y_true: np.ndarray, proba: np.ndarray,
                           num_classes: int | None = None) -> dict[str, float]:
    """Test metrics from labels and class probabilities ``(n, K)`` (pure).

    Binary: precision, recall, F1 of class 1, specificity = TN / (TN + FP), ROC AUC of
    ``proba[:, 1]``. Multi-class: macro averages over one-vs-rest classes and macro OvR ROC AUC.
    g-mean = sqrt(recall * specificity). Undefined ratios count as 0; an AUC that is undefined
    (a class absent from ``y_true``) is NaN.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"proba must be (n, K) for {len(y)} labels, got {p.shape}")
    k = int(num_classes or p.shape[1])
    pred = p.argmax(1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    tn = cm.sum() - tp - fp - fn

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    prec, rec, spec = ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(tn, tn + fp)
    f1 = ratio(2 * prec * rec, prec + rec)
    if k == 2:
        precision, recall, specificity, f1_ = prec[1], rec[1], spec[1], f1[1]
    else:
        precision, recall, specificity, f1_ = prec.mean(), rec.mean(), spec.mean(), f1.mean()
    present = np.unique(y)
    auc = float("nan")
    if len(present) == k:
        if k == 2:
            auc = float(roc_auc_score(y, p[:, 1]))
        else:
            q = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
            auc = float(roc_auc_score(y, q, multi_class="ovr", average="macro", labels=list(range(k))))
    return {
        "accuracy": float(tp.sum() / max(len(y), 1)),
        "precision": float(precision),
        "recall": float(recall),
        "specificity": float(specificity),
        "f1": float(f1_),
        "g_mean": float(math.sqrt(recall * specificity)),
        "roc_auc": auc,
    }


def evaluate_classifier(model: nn.Module | TrainedClassifier, images: np.ndarray,
                        labels: np.ndarray, batch_size: int = 512) -> dict[str, float]:
    """:data:`METRICS` of ``model`` on real images (see :func:`classification_metrics`)."""
    proba = predict_proba(model, images, batch_size=batch_size)
    k = model.num_classes if isinstance(model, TrainedClassifier) else proba.shape[1]
    return classification_metrics(np.asarray(labels).reshape(-1), proba, k)


# --------------------------------------------------------------------------- protocol


def run_protocol(train_set, val_set, test_set, *, seeds: Iterable[int] = (0, 1, 2),
                 model: str = "small-cnn", epochs: int = 100, **train_kwargs) -> pd.DataFrame:
    """Train once per seed on ``train_set``, test on ``test_set``: one row per seed.

    ``train_set``: a :class:`TrainingSource`, Dataset, SyntheticSamples or (images, labels);
    ``val_set`` / ``test_set``: real Datasets or (images, labels). Columns: ``seed``, the
    :data:`METRICS`, ``best_epoch``, ``epochs_run``, ``best_val_loss``, ``seconds``.
    """
    src = _as_source(train_set)
    vx, vy = _as_arrays(val_set, "val_set")
    sx, sy = _as_arrays(test_set, "test_set")
    rows = []
    for s in seeds:
        clf = train_classifier(src.images, src.labels, vx, vy, model=model, epochs=epochs, seed=int(s),
                               samples_per_epoch=src.samples_per_epoch, sampler=src.sampler,
                               groups=src.groups, **train_kwargs)
        row = {"seed": int(s), **evaluate_classifier(clf, sx, sy), "best_epoch": clf.best_epoch,
               "epochs_run": clf.epochs_run, "best_val_loss": clf.best_val_loss,
               "seconds": round(clf.seconds, 3)}
        log.info("%s seed %d: g_mean %.4f accuracy %.4f (%d epochs)", src.name or "train", s,
                 row["g_mean"], row["accuracy"], clf.epochs_run)
        rows.append(row)
    return pd.DataFrame(rows)


def compare(arms: Mapping[str, TrainingSource], val, test, *, seeds: Iterable[int] = (0, 1, 2),
            model: str = "small-cnn", epochs: int = 100, **train_kwargs) -> pd.DataFrame:
    """Run :func:`run_protocol` for every arm: a tidy table (``arm``, ``seed``, metrics, ...).

    Every arm uses the same seeds, so arms are paired by seed (same initialisation).
    """
    if not arms:
        raise ValueError("no arms to compare; build them with build_arms(...) or pass {name: source}")
    seeds = [int(s) for s in seeds]
    frames = []
    for name, source in arms.items():
        log.info("downstream arm %s", name)
        df = run_protocol(source, val, test, seeds=seeds, model=model, epochs=epochs, **train_kwargs)
        df.insert(0, "arm", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _arm_kind(arm: str) -> str:
    if arm.startswith("single:"):
        return "single"
    if arm.startswith("random-ensemble-"):
        return "random"
    return "arm"


def summarize(df: pd.DataFrame, metrics: Sequence[str] | None = None,
              best_by: str = "g_mean") -> pd.DataFrame:
    """Mean ± std over seeds per arm, plus aggregate rows.

    Columns: ``arm``, ``n_runs``, ``<metric>_mean``, ``<metric>_std``, ``aggregate``, ``note``.
    Aggregates: ``single (mean)`` (mean over single generators of their mean; std across the
    generators), ``single (best)`` (the single generator with the best mean ``best_by``, named in
    ``note``) and ``random-ensemble (mean)`` (like ``single (mean)``).
    """
    if "arm" not in df.columns:
        raise ValueError("summarize expects the table from compare() (an 'arm' column)")
    metrics = [m for m in (metrics or METRICS) if m in df.columns]
    if best_by not in metrics:
        raise ValueError(f"best_by={best_by!r} is not among the metric columns {metrics}")
    arms = list(dict.fromkeys(df["arm"]))
    g = df.groupby("arm", sort=False)[metrics]
    mean, std, n = g.mean().reindex(arms), g.std().reindex(arms), g.size().reindex(arms)

    def row(arm, m, s, n_runs, aggregate=False, note=""):
        r = {"arm": arm, "n_runs": int(n_runs)}
        for k in metrics:
            r[f"{k}_mean"] = float(m[k])
            r[f"{k}_std"] = float(s[k]) if pd.notna(s[k]) else float("nan")
        r["aggregate"] = aggregate
        r["note"] = note
        return r

    rows = [row(a, mean.loc[a], std.loc[a], n.loc[a]) for a in arms]
    for kind, label in (("single", "single"), ("random", "random-ensemble")):
        names = [a for a in arms if _arm_kind(a) == kind]
        if not names:
            continue
        m = mean.loc[names]
        rows.append(row(f"{label} (mean)", m.mean(), m.std() if len(names) > 1 else m.mean() * np.nan,
                        n.loc[names].sum(), True, f"mean over {len(names)} {label} arms; std across them"))
        if kind == "single":
            best = m[best_by].idxmax()
            rows.append(row("single (best)", mean.loc[best], std.loc[best], n.loc[best], True,
                            f"{best} (best mean {best_by})"))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- arms


def _compatible_pool(catalog, members: list[str], rows: list[dict]) -> list[str]:
    from ensemble.synthesis.sample import parse_image_shape

    k = int(rows[0]["num_classes"])
    shape = parse_image_shape(rows[0]["image_shape"])
    table = catalog.list()
    pool = [str(r["name"]) for _, r in table.iterrows()
            if int(r["num_classes"]) == k and parse_image_shape(r["image_shape"]) == shape]
    for m in members:
        if m not in pool:
            pool.append(m)
    return pool


def build_arms(catalog, ensemble, real_train, *, n_per_class: int | None = None, n_random: int = 3,
               seed: int = 0, pool: Sequence[str] | None = None, device: str = "auto",
               samples_per_epoch: int | None = None) -> dict[str, TrainingSource]:
    """The standard arms: ``real``, ``G*``, ``single:<name>`` per pool generator,
    ``naive (all pooled)`` and ``random-ensemble-<i>`` (``n_random`` random sets of |G*| members).

    Every pool generator is sampled once (``n_per_class`` images per class, default
    ceil(|real train| / classes), seed as in :func:`ensemble.synthesis.sample.sample_ensemble`) and the arms
    share those images; each synthetic arm draws ``samples_per_epoch`` (default |real train|)
    images per epoch, a member uniformly, then one of its images. ``pool`` defaults to every
    catalog generator with the ensemble's image shape and number of classes.
    """
    from ensemble.search.result import Ensemble
    from ensemble.synthesis.sample import ensemble_members, parse_image_shape, sample_ensemble

    members, _ = ensemble_members(ensemble)
    real_x, real_y = _as_arrays(real_train, "real_train")
    rows = []
    for m in members:
        try:
            rows.append(catalog.get(m))
        except KeyError as exc:
            raise ValueError(f"ensemble member {m!r} is not in the catalog") from exc
    k = int(rows[0]["num_classes"])
    gen_shape = parse_image_shape(rows[0]["image_shape"])
    if tuple(real_x.shape[1:]) != gen_shape:
        raise ValueError(
            f"real images are {tuple(real_x.shape[1:])} but the generators make {gen_shape}; resize "
            f"the real splits first, e.g. resize_images(images, {gen_shape[0]})"
        )
    pool = [str(p) for p in pool] if pool is not None else _compatible_pool(catalog, members, rows)
    for name in dict.fromkeys([*members, *pool]):
        r = catalog.get(name)
        if int(r["num_classes"]) != k or parse_image_shape(r["image_shape"]) != gen_shape:
            raise ValueError(
                f"generator {name!r} makes {int(r['num_classes'])} classes of {parse_image_shape(r['image_shape'])} "
                f"but {members[0]!r} makes {k} of {gen_shape}; every arm must come from one dataset"
            )
    if n_per_class is None:
        n_per_class = int(math.ceil(len(real_y) / k))
    spe = int(samples_per_epoch or len(real_y))

    from tqdm.auto import tqdm

    samples = {}
    for name in tqdm(pool, desc="sample arms", unit="generator", leave=False):
        samples[name] = sample_ensemble([name], catalog, n_per_class=n_per_class, seed=seed,
                                        device=device)

    def combine(names: Sequence[str], arm: str) -> TrainingSource:
        imgs = np.concatenate([samples[x].images for x in names])
        labs = np.concatenate([samples[x].labels for x in names])
        grp = np.concatenate([np.full(len(samples[x]), i) for i, x in enumerate(names)])
        return TrainingSource(imgs, labs, groups=grp, samples_per_epoch=spe, sampler="member",
                              name=arm, meta={"members": list(names)})

    arms: dict[str, TrainingSource] = {
        "real": TrainingSource(real_x, real_y, sampler="shuffle", name="real"),
        "G*": combine(members, "G*"),
    }
    for name in pool:
        arms[f"single:{name}"] = combine([name], f"single:{name}")
    arms["naive (all pooled)"] = combine(pool, "naive (all pooled)")

    size = len(members)
    n_combos = math.comb(len(pool), size)
    want = min(int(n_random), n_combos - (1 if set(members) <= set(pool) else 0))
    if want < int(n_random):
        log.warning("only %d random ensembles of %d out of %d generators differ from G*", max(want, 0),
                    size, len(pool))
    rng = np.random.default_rng(derive_seed(seed, "downstream", "random-ensembles"))
    seen = {tuple(sorted(members))}
    i = 0
    while i < want:
        pick = tuple(sorted(rng.choice(len(pool), size=size, replace=False).tolist()))
        names = tuple(sorted(pool[j] for j in pick))
        if names in seen:
            continue
        seen.add(names)
        ordered = [pool[j] for j in pick]
        arms[f"random-ensemble-{i}"] = combine(ordered, f"random-ensemble-{i}")
        i += 1
    if isinstance(ensemble, Ensemble):
        arms["G*"].meta.update({"intra_d": ensemble.intra_d, "inter_d": ensemble.inter_d,
                                "rule": ensemble.rule})
    return arms


# --------------------------------------------------------------------------- plot


def plot_comparison(summary: pd.DataFrame, path: str | os.PathLike, metric: str = "g_mean",
                    arms: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Horizontal bars of ``<metric>_mean`` with ``<metric>_std`` error bars, one per arm (PNG).

    By default the individual ``single:*`` and ``random-ensemble-<i>`` rows are left out when their
    aggregate rows are there. Written atomically without pyplot (no global backend change).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    col = f"{metric}_mean"
    if col not in summary.columns:
        known = [c[:-5] for c in summary.columns if c.endswith("_mean")]
        raise ValueError(f"metric {metric!r} is not in the summary; known: {', '.join(known)}")
    if arms is None:
        present = set(summary["arm"])
        keep = []
        for a in summary["arm"]:
            kind = _arm_kind(a)
            if kind == "single" and "single (mean)" in present:
                continue
            if kind == "random" and "random-ensemble (mean)" in present:
                continue
            keep.append(a)
        arms = keep
    table = summary.set_index("arm").loc[list(arms)]
    means = table[col].to_numpy(dtype=float)
    stds = np.nan_to_num(table[f"{metric}_std"].to_numpy(dtype=float)) if f"{metric}_std" in table else None
    colors = ["#d62728" if a == "G*" else "#2ca02c" if a == "real" else
              "#7f7f7f" if _arm_kind(a) != "arm" or "(" in a else "#1f77b4" for a in table.index]
    fig = Figure(figsize=(7, 0.45 * len(table) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(table))[::-1]
    ax.barh(y, means, xerr=stds, color=colors, capsize=3)
    ax.set_yticks(y, labels=list(table.index))
    ax.set_xlabel(f"{metric} on the real test set (mean ± std over seeds)")
    ax.set_xlim(0, max(1.0, float(np.nanmax(means + (stds if stds is not None else 0))) * 1.05))
    for yi, m in zip(y, means, strict=True):
        ax.text(0.01, yi, f"{m:.3f}", va="center", ha="left", fontsize=8, color="white")
    ax.set_title(title or "Train on synthetic, test on real")
    fig.tight_layout()
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120,
                                                   metadata={"Software": None}))
