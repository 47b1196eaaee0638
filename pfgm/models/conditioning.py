"""Class and augmentation labels as the networks take them (the interface of pfgm.models):

    model(x, t, class_labels=None, augment_labels=None)

class_labels: float one-hot rows (B, label_dim); an all-zero row is the null label (EDM's convention, used
by label dropout and classifier-free guidance); None on a conditional network means the null label for
every sample. augment_labels: (B, augment_dim) floats from the augmentation pipe, or None (no
augmentation, e.g. when sampling). A network built with label_dim = 0 (augment_dim = 0) has no parameters
for them and refuses labels, so a label can never be dropped silently.
"""
import math

import torch
from torch import nn


def class_labels_for(class_labels, label_dim, x):
    """The (B, label_dim) float labels a network with `label_dim` classes embeds for input x: the given
    ones checked, or the null label (zeros) when None. None for an unconditional network."""
    if label_dim == 0:
        if class_labels is not None:
            raise ValueError("class_labels given to a network built with model.label_dim = 0")
        return None
    if class_labels is None:
        return torch.zeros((x.shape[0], label_dim), dtype=x.dtype, device=x.device)
    if class_labels.dim() != 2 or class_labels.shape[1] != label_dim or class_labels.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"class_labels must have shape ({x.shape[0]}, {label_dim}), got {tuple(class_labels.shape)}")
    return class_labels.to(x.dtype).expand(x.shape[0], label_dim)


def no_augment_labels(augment_labels, name):
    """For networks without an augmentation embedding: refuse labels rather than ignore them."""
    if augment_labels is not None:
        raise ValueError(f"augment_labels given to {name}, which has no augmentation embedding "
                         "(use model.name = 'songunet' with model.augment_dim > 0)")


class LabelEmbedding(nn.Module):
    """EDM's map_label: a linear map of the one-hot label times sqrt(label_dim) (unit-norm rows in, so
    the embedding's scale does not depend on the number of classes), added to the noise embedding."""

    def __init__(self, label_dim, dim):
        super().__init__()
        self.linear = nn.Linear(label_dim, dim)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, labels):
        return self.linear(labels * math.sqrt(self.linear.in_features))
