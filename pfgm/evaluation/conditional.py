"""Samples of a conditional model (model.label_dim > 0): the classes they are asked for, how many land in
the asked class ("accuracy of samples"), and their picture (one row, or colour, per class).

The judge of a sample's class: the digits classifier (pfgm.evaluation.digits) for 8x8 digits; the toy
densities' own geometry (pfgm.datasets.toy.classify: nearest Gaussian, dark square, nearer moon).
"""
import numpy as np
import torch

from pfgm import seeds, visualize
from pfgm.methods import conditioning


def asked_labels(config, n, device=None):
    """The n classes an evaluation asks for (sampling.class_label, or a random class per sample drawn from
    a stream of its own, so the same samples get the same classes whatever the batch size); None for an
    unconditional model."""
    gen = torch.Generator().manual_seed(seeds.hashed(config.seed, seeds.SAMPLE_LABELS))
    labels = conditioning.asked_labels(n, config.model.label_dim, config.sampling.class_label, gen)
    return None if labels is None else labels.to(device)


def judged_classes(config, samples):
    """The class each sample is judged to be (numpy ints; -1: none), or None when no judge fits the data."""
    samples = np.asarray(samples)
    if config.data.dataset == "digits" and samples.shape[1:] == (1, 8, 8):
        from pfgm.evaluation import digits

        return digits.digits_features(samples)[1].argmax(1)
    if samples.ndim == 2 and samples.shape[1] == 2:
        from pfgm.datasets import toy

        return toy.classify(config.data.dataset, samples)
    return None


def class_report(config, samples, labels):
    """{'class_accuracy': share of samples judged to be of their asked class, 'class_accuracy_per_class':
    the same per asked class (None where no sample asked for it)}; {} without labels or a judge."""
    if labels is None:
        return {}
    judged = judged_classes(config, samples)
    if judged is None:
        return {}
    labels = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    hit = judged == labels
    per_class = [float(hit[labels == c].mean()) if (labels == c).any() else None
                 for c in range(config.model.label_dim)]
    return dict(class_accuracy=float(hit.mean()), class_accuracy_per_class=per_class)


def save_figure(samples, labels, path, reference=None, reference_labels=None, title=None):
    """The samples' picture: by class when they have labels (visualize.save_class_figure), else as always."""
    if labels is None:
        return visualize.save_samples_figure(samples, path, reference=reference, title=title)
    labels = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    if reference_labels is not None:
        reference_labels = np.asarray(reference_labels)
    return visualize.save_class_figure(samples, labels, path, reference=reference, reference_labels=reference_labels,
                                       title=title)
