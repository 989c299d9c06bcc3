"""Memorisation audit: does a generator copy the real training images it stands in for?

Synthetic data is made so that it can be shared where the real images cannot; a generator that
copies its training images defeats that, and the fidelity score rewards it (density is unbounded,
so samples sitting on training images raise Intra-d). The audit runs in the score stage, in the
same pass over the real-vs-generated distance blocks (:func:`ensemble.scoring.knn.compare_sets`
with ``nearest_b=True``): for every generated sample, the exact distance to its nearest real
training image, and whether it is closer to that image than the image is to its own nearest
other training image (the authenticity test of Alaa et al., ICML 2022: such a sample is "close").

The reference is held-out real data: the real validation images audited against the training
images give the close rate that honest new samples of the real distribution show. A member is
flagged when its close count is significantly above that rate: a one-sided exact binomial test
(:func:`scipy.stats.binomtest`, ``alternative="greater"``) at the member's sample count, level
``alpha`` (default 0.01), against the null rate ``p0`` = the one-sided ``1 − alpha``
Clopper–Pearson upper bound of the held-out rate (so a small validation split's own sampling error
does not make flags). Exact copies (identical features: distance 0 in the embedding) are counted
apart; byte-identical images are counted by :func:`byte_copies` where the images are at hand.

Limits (docs/method.md): an embedding can call two different images close, or two near copies far
apart; a clean audit is evidence, not a privacy guarantee.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

__all__ = [
    "ALPHA",
    "MEMORISATION_COLUMNS",
    "close_flags",
    "reference_rate",
    "member_audit",
    "memorisation_table",
    "audit_attrs",
    "byte_copies",
    "regenerate_scored_samples",
]

#: the default level of the one-sided binomial test (per member)
ALPHA = 0.01

#: the columns of ``ScoreTables.memorisation`` (indexed by generator name)
MEMORISATION_COLUMNS = ("n_samples", "exact_copies", "n_close", "copy_rate", "holdout_rate",
                        "reference_rate", "p_value", "flagged", "nn_median")


def close_flags(nn_dist: np.ndarray, nn_index: np.ndarray, real_nn1: np.ndarray) -> np.ndarray:
    """Authenticity: sample j is close when ``nn_dist[j] < real_nn1[nn_index[j]]``.

    ``nn_dist``/``nn_index``: each sample's exact distance to its nearest training image and that
    image's index; ``real_nn1``: every training image's distance to its nearest other training
    image (:func:`~ensemble.scoring.knn.knn_radii` with k=1). Both sides are prdc-style float32.
    """
    nn_dist = np.asarray(nn_dist, np.float32)
    return nn_dist < np.asarray(real_nn1, np.float32)[np.asarray(nn_index, np.int64)]


def reference_rate(n_close: int, n: int, alpha: float = ALPHA) -> float:
    """One-sided ``1 − alpha`` Clopper–Pearson upper bound of a rate of ``n_close`` in ``n``."""
    from scipy.stats import beta

    if n <= 0:
        raise ValueError("the held-out reference needs at least one image")
    if n_close >= n:
        return 1.0
    return float(beta.ppf(1.0 - alpha, n_close + 1, n - n_close))


def member_audit(close: np.ndarray, copies: np.ndarray, nn_dist: np.ndarray, *, p0: float,
                 alpha: float = ALPHA) -> dict:
    """One member's row of the table: counts, rates, the binomial test's p-value and the flag."""
    from scipy.stats import binomtest

    n = int(len(close))
    k = int(np.count_nonzero(close))
    p = float(binomtest(k, n, min(max(p0, 0.0), 1.0), alternative="greater").pvalue) if n else math.nan
    return {"n_samples": n, "exact_copies": int(np.count_nonzero(copies)), "n_close": k,
            "copy_rate": k / n if n else math.nan, "p_value": p, "flagged": bool(n and p < alpha),
            "nn_median": float(np.median(nn_dist)) if n else math.nan}


def memorisation_table(names: list[str], members: list[dict], holdout: dict, *, alpha: float = ALPHA):
    """The per-member audit as a DataFrame indexed by generator name (see the module docstring).

    ``members``: per name, ``close``/``copies``/``nn_dist`` arrays of its samples; ``holdout``:
    the same for the held-out real images. ``attrs`` keeps the reference (sizes, rates, test).
    """
    import pandas as pd

    h_close = np.asarray(holdout["close"], bool)
    n_h, k_h = len(h_close), int(np.count_nonzero(h_close))
    p0 = reference_rate(k_h, n_h, alpha)
    rows = []
    for m in members:
        row = member_audit(np.asarray(m["close"], bool), np.asarray(m["copies"], bool),
                           np.asarray(m["nn_dist"]), p0=p0, alpha=alpha)
        row.update(holdout_rate=k_h / n_h, reference_rate=p0)
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index([str(n) for n in names], name="name"),
                      columns=list(MEMORISATION_COLUMNS))
    df["flagged"] = df["flagged"].astype(bool)
    df.attrs.update(audit_attrs(n_h, k_h, int(np.count_nonzero(holdout["copies"])),
                                float(np.median(holdout["nn_dist"])), alpha))
    return df


def audit_attrs(n_holdout: int, n_close: int, exact_copies: int, nn_median: float, alpha: float) -> dict:
    """The reference and the test, as ``DataFrame.attrs`` (JSON-able)."""
    return {"n_holdout": int(n_holdout), "holdout_close": int(n_close),
            "holdout_exact_copies": int(exact_copies), "holdout_nn_median": float(nn_median),
            "alpha": float(alpha),
            "test": "one-sided exact binomial (scipy.stats.binomtest, alternative='greater') of the "
                    "member's close count against the one-sided (1 - alpha) Clopper-Pearson upper "
                    "bound of the held-out close rate"}


def byte_copies(train_images: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Per image of ``images``: whether some training image has exactly the same bytes (shape too)."""
    train_images, images = np.asarray(train_images), np.asarray(images)

    def digests(x: np.ndarray) -> list[bytes]:
        x = np.ascontiguousarray(x)
        return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in x]

    if train_images.shape[1:] != images.shape[1:] or train_images.dtype != images.dtype:
        return np.zeros(len(images), dtype=bool)
    seen = set(digests(train_images))
    return np.array([d in seen for d in digests(images)], dtype=bool)


def regenerate_scored_samples(catalog, name: str, n_samples: int, seed: int, *, per_class: bool = False,
                              device: str = "auto") -> np.ndarray:
    """The very images :func:`ensemble.features.compute_features` drew from ``name`` with ``seed``.

    Same labels (:func:`~ensemble.features.collect.sample_labels`) and sample seed, so sample j
    here is the sample j the audit's ``nearest(name)`` refers to (the figure, byte copies).
    """
    from ensemble.features.collect import sample_labels
    from zoo.seeding import derive_seed

    row = catalog.get(name)
    labels = sample_labels(int(n_samples), int(row["num_classes"]), seed, per_class)
    gen = catalog.load(name, device=device)
    return np.asarray(gen.sample(int(n_samples), labels=labels, seed=derive_seed(seed, "sample", name)))
