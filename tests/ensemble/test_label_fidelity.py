"""ensemble.label_fidelity: a classifier of real images judges whether samples show their class."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.label_fidelity import LabelClassifier, fit_label_classifier, label_agreement


def test_label_agreement_of_real_images_with_true_and_swapped_labels(pneumonia, pneumonia_small):
    train, held = pneumonia_small, pneumonia.subset(256, seed=1)
    judge = fit_label_classifier(train.images, train.labels, held.images, held.labels, epochs=2,
                                 seed=0, device="cpu")
    assert isinstance(judge, LabelClassifier) and 0.0 < judge.val_accuracy <= 1.0
    true = label_agreement(judge, held.images, held.labels)
    assert true == pytest.approx(judge.val_accuracy)  # same images, same labels
    swapped = label_agreement(judge.classifier, held.images, 1 - held.labels)
    assert swapped == pytest.approx(1.0 - true)  # two classes: every image agrees with one
    with pytest.raises(ValueError, match="255 labels for 256 images"):
        label_agreement(judge, held.images, held.labels[:-1])
    assert label_agreement(judge, held.images[:1], np.asarray([[held.labels[0]]])) in (0.0, 1.0)
