"""Class labels in the score_sde-layout NCSN++ / DDPM++ and the toy MLP (model.label_dim): absent when 0
(state_dict unchanged, labels refused), and when present an embedding added to the noise embedding."""
import pytest
import torch

from conftest import shipped_config
from pfgm import models


def _configs():
    digits = shipped_config("poisson/digits_ddpmpp")
    pfgmpp = shipped_config("pfgmpp/digits_ddpmpp")
    toy = shipped_config("pfgmpp/toy2d")
    toy_pfgm = shipped_config("poisson/toy2d")
    return {"ncsnpp-poisson": digits, "ncsnpp-pfgmpp": pfgmpp, "mlp-pfgmpp": toy, "mlp-poisson": toy_pfgm}


CONFIGS = _configs()


def _build(config, label_dim, seed=0):
    config = config.copy_and_resolve_references()
    config.model.label_dim = label_dim
    torch.manual_seed(seed)
    model = models.build(config, "cpu").eval()
    with torch.no_grad():  # O(1) weights everywhere: some layers start at zero
        for p in model.parameters():
            p.copy_(torch.randn_like(p) / max(1, p[0].numel()) ** 0.5)
    return model, config


def _inputs(config, n=4):
    g = torch.Generator().manual_seed(1)
    shape = tuple(config.data.shape) if config.model.name == "mlp" else (
        config.data.num_channels, config.data.image_size, config.data.image_size)
    return torch.randn((n, *shape), generator=g), torch.rand(n, generator=g) + 0.5


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_label_dim_zero_keeps_the_state_dict_and_refuses_labels(name):
    plain, config = _build(CONFIGS[name], 0)
    labelled, _ = _build(CONFIGS[name], 3)
    extra = set(labelled.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) <= set(labelled.state_dict())
    assert extra and all(k.startswith("map_label.") for k in extra), extra
    x, t = _inputs(config)
    with pytest.raises(ValueError, match="label_dim = 0"):
        plain(x, t, class_labels=torch.eye(3)[[0, 1, 2, 0]])
    with pytest.raises(ValueError, match="augment"):
        plain(x, t, augment_labels=torch.zeros(4, 9))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_labels_are_added_to_the_noise_embedding(name):
    """Zero map_label weights and bias: the labelled network is the unconditional one with the same other
    weights, whatever the label. With its own weights each class gives its own output, and None is the
    all-zero (null) label."""
    plain, config = _build(CONFIGS[name], 0)
    labelled, _ = _build(CONFIGS[name], 3)
    state = {k: v for k, v in labelled.state_dict().items() if not k.startswith("map_label.")}
    plain.load_state_dict(state)
    x, t = _inputs(config)
    onehot = torch.eye(3)[[0, 1, 2, 1]]
    with torch.no_grad():
        ref = _first(plain(x, t))
        conditional = _first(labelled(x, t, class_labels=onehot))
        null = _first(labelled(x, t, class_labels=torch.zeros(4, 3)))
        torch.testing.assert_close(_first(labelled(x, t)), null)
        other = _first(labelled(x, t, class_labels=torch.eye(3)[[1, 2, 0, 0]]))
        assert all(not torch.allclose(conditional[i], other[i]) for i in range(4))
        torch.testing.assert_close(_first(labelled(x[:1], t[:1], class_labels=onehot[:1])), conditional[:1])
        for p in labelled.map_label.parameters():
            p.zero_()
        torch.testing.assert_close(_first(labelled(x, t, class_labels=onehot)), ref)


def test_label_gradients_reach_the_embedding():
    labelled, config = _build(CONFIGS["ncsnpp-pfgmpp"], 10)
    x, t = _inputs(config, 2)
    _first(labelled(x, t, class_labels=torch.eye(10)[[3, 7]])).square().sum().backward()
    assert labelled.map_label.linear.weight.grad[:, [3, 7]].abs().sum() > 0
    assert labelled.map_label.linear.weight.grad[:, [0, 1, 2]].abs().sum() == 0


def test_bad_label_shapes_are_refused():
    labelled, config = _build(CONFIGS["mlp-pfgmpp"], 3)
    x, t = _inputs(config)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        labelled(x, t, class_labels=torch.zeros(4, 5))
