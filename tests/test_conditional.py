"""Class-conditional generation without a network: the conditional targets against float64 references, the
label plumbing, and the labelled twins of the exact-field / exact-denoiser / exact-score checks: driven by
the exact conditional field of labelled charges, every sample asked for class c lands on a class-c
charge, with plain conditional sampling (w = 1) and with guidance (w = 3)."""
import math

import pytest
import torch
from torch import nn

from conftest import shipped_config
from pfgm import config_checks, methods, pfgmpp, poisson, sampling
from pfgm.config_checks import leaves
from pfgm.methods import conditioning
from pfgm.methods.sde import VESDE

# six charges in 3-D, three classes of two, the classes interleaved in space
CHARGES = torch.tensor([[1.0, 0.0, 0.0], [-0.5, 0.8, 0.1], [0.2, -0.9, 0.3], [-0.7, 0.1, -0.4],
                        [0.6, 0.6, -0.5], [-0.1, -0.3, 0.9]], dtype=torch.float64)
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])
NUM_CLASSES = 3


def class_charges(onehot):
    """For each row of a one-hot (B, C) batch: a mask (B, L) of the charges it may see (all for a null row)."""
    rows_null = onehot.sum(1) == 0
    mask = onehot[:, LABELS].bool()
    mask[rows_null] = True
    return mask


def reference_field_target(x, charges, gamma):
    """-sqrt(N) e / (|e| + gamma), e = sum_j k_j (x~ - y~_j) / sum_j k_j, k_j = |x~ - y~_j|^{-(N+1)}: float64."""
    n = charges.shape[1]
    y = torch.cat([charges, torch.zeros(len(charges), 1, dtype=charges.dtype)], 1)
    diff = x[None, :] - y
    k = diff.norm(dim=1) ** -(n + 1)
    e = (k[:, None] * diff).sum(0) / k.sum()
    return -math.sqrt(n) * e / (e.norm() + gamma)


def augmented_points(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, 3, generator=g, dtype=torch.float64)
    z = torch.rand(n, generator=g, dtype=torch.float64) * 2 + 0.05
    return torch.cat([xs, z[:, None]], 1)


# ---- the conditional targets -------------------------------------------------------------------------

@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_class_field_target_is_the_field_of_the_class_charges(gamma):
    x = augmented_points(12)
    labels = torch.tensor([0, 1, 2, -1] * 3)
    got = poisson.class_field_target(x, CHARGES, gamma, labels, LABELS)
    for i in range(len(x)):
        mine = CHARGES if labels[i] < 0 else CHARGES[LABELS == labels[i]]
        torch.testing.assert_close(got[i], reference_field_target(x[i], mine, gamma), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="class 5"):
        poisson.class_field_target(x[:1], CHARGES, gamma, torch.tensor([5]), LABELS)


def test_one_pass_class_targets_equal_one_class_at_a_time():
    """The masked one-pass targets (no host read) against field_target / posterior_mean of each row's own class
    alone, with classes larger than the 8 nearest charges refined exactly and points close to a charge."""
    g = torch.Generator().manual_seed(5)
    charges = torch.randn(60, 16, generator=g, dtype=torch.float64)
    charge_labels = torch.randint(0, 3, (60,), generator=g)
    labels = torch.tensor([0, 1, 2, -1] * 5)
    near = charges[torch.randint(0, 60, (20,), generator=g)] + 1e-4 * torch.randn(20, 16, generator=g, dtype=torch.float64)
    z = torch.rand(20, generator=g, dtype=torch.float64) * 0.01 + 1e-4
    x = torch.cat([near, z[:, None]], 1)
    sigma = torch.rand(20, generator=g, dtype=torch.float64) + 0.05
    field = poisson.class_field_target(x, charges, 0.05, labels, charge_labels)
    denoised = pfgmpp.class_posterior_mean(near, charges, sigma, 128, labels, charge_labels)
    for i in range(20):
        mine = charges if labels[i] < 0 else charges[charge_labels == labels[i]]
        torch.testing.assert_close(field[i], poisson.field_target(x[i:i + 1], mine, 0.05)[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(denoised[i], pfgmpp.posterior_mean(near[i:i + 1], mine, sigma[i:i + 1], 128)[0],
                                   rtol=1e-9, atol=1e-12)


def test_unconditional_slope_is_the_class_posterior_average_of_the_class_slopes():
    """E = sum_c E_c, so dx/dz = E_x / E_z = sum_c (E_z,c / E_z) dx/dz_c: the identity PFGM's guidance rests on
    (the network's normalized fields give each slope, not each E_z,c)."""
    x = augmented_points(20, seed=1)
    slope = lambda v: v[:, :3] / v[:, 3:]
    all_slope = slope(poisson.field_target(x, CHARGES, 0.3))
    post = poisson.class_posterior(x, CHARGES, LABELS, NUM_CLASSES)
    torch.testing.assert_close(post.sum(1), torch.ones(20, dtype=torch.float64))
    mixed = sum(post[:, c:c + 1] * slope(poisson.field_target(x, CHARGES[LABELS == c], 0.3))
                for c in range(NUM_CLASSES))
    torch.testing.assert_close(mixed, all_slope, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("aug_dim", [1, 8, math.inf])
def test_class_posterior_mean_is_the_denoiser_of_the_class_charges(aug_dim):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(9, 3, generator=g, dtype=torch.float64)
    sigma = torch.rand(9, generator=g, dtype=torch.float64) + 0.1
    labels = torch.tensor([0, 1, 2, -1, 0, 1, 2, -1, 0])
    got = pfgmpp.class_posterior_mean(x, CHARGES, sigma, aug_dim, labels, LABELS)
    for i in range(len(x)):
        mine = CHARGES if labels[i] < 0 else CHARGES[LABELS == labels[i]]
        torch.testing.assert_close(got[i:i + 1], pfgmpp.posterior_mean(x[i:i + 1], mine, sigma[i:i + 1], aug_dim))


# ---- label plumbing --------------------------------------------------------------------------------

def test_one_hot_dropout_asked_labels_and_guidance_combination():
    oh = conditioning.one_hot(torch.tensor([2, -1, 0]), 3)
    assert oh.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    labels = torch.arange(10000) % 7
    kept = conditioning.drop(labels, 0.25, torch.Generator().manual_seed(0))
    dropped = (kept == conditioning.NULL).float().mean().item()
    assert abs(dropped - 0.25) < 0.02 and bool((kept[kept >= 0] == labels[kept >= 0]).all())
    assert conditioning.drop(labels, 0.0) is labels
    assert conditioning.asked_labels(5, 0, -1) is None
    assert conditioning.asked_labels(4, 3, 2).tolist() == [2, 2, 2, 2]
    rand = conditioning.asked_labels(3000, 3, -1, torch.Generator().manual_seed(0))
    assert torch.bincount(rand, minlength=3).min() > 900
    # u + w (c - u), both branches in one call of the doubled batch
    calls = []

    def fn(x, t, lab):
        calls.append(len(x))
        return x * t + (lab >= 0).to(x.dtype)[:, None] * (lab[:, None] + 1.0)

    x, lab = torch.ones(2, 1), torch.tensor([1, 2])
    torch.testing.assert_close(conditioning.guided(fn, lab, 3.0)(x, 2.0), torch.tensor([[2.0 + 3 * 2], [2.0 + 3 * 3]]))
    assert calls == [4]
    torch.testing.assert_close(conditioning.guided(fn, lab, 1.0)(x, 2.0), torch.tensor([[4.0], [5.0]]))
    assert calls == [4, 2]


def test_each_conditional_config_is_its_unconditional_twin_with_labels():
    """A *_cond config changes only the data set and the label keys of its twin, so its sampler keeps the twin's
    settings (toy PFGM: guidance only from z = 0.5 on)."""
    for twin, cond in (("poisson/toy2d", "poisson/toy2d_cond"), ("pfgmpp/toy2d", "pfgmpp/toy2d_cond"),
                       ("vp/toy2d", "vp/toy2d_cond"), ("poisson/digits_ddpmpp", "poisson/digits_ddpmpp_cond"),
                       ("pfgmpp/digits_ddpmpp", "pfgmpp/digits_ddpmpp_cond"), ("vp/digits_ddpmpp", "vp/digits_ddpmpp_cond")):
        a, b = (dict(leaves(shipped_config(n))) for n in (twin, cond))
        changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        assert changed <= {"data.dataset", "model.label_dim", "training.label_dropout"}, (cond, changed)


def test_label_keys_are_checked_by_name():
    for key, value, match in (("model.label_dim", -1, "model.label_dim"), ("training.label_dropout", 1.0, "label_dropout"),
                              ("sampling.class_label", 3, "sampling.class_label"),
                              ("sampling.guidance", -1.0, "sampling.guidance")):
        c = shipped_config("poisson/toy2d")
        c.model.label_dim = 3
        section, name = key.split(".")
        c[section][name] = value
        with pytest.raises(config_checks.ConfigError, match=match):
            config_checks.validate(c)
    c = shipped_config("vp/toy2d")
    c.sampling.guidance = 2.0
    with pytest.raises(config_checks.ConfigError, match="sampling.guidance.*label_dim = 0"):
        config_checks.validate(c)


# ---- labelled twins of the exact-field checks --------------------------------------------------------

class ExactClassField(nn.Module):
    """PFGM's 'network': the normalized field of the charges of each row's class (all for a null row)."""

    def __init__(self, gamma=0.0):
        super().__init__()
        self.gamma = gamma
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, z, class_labels=None):
        xa = torch.cat([x.reshape(len(x), -1), z[:, None]], 1)
        labels = torch.where(class_labels.sum(1) > 0, class_labels.argmax(1), -1)
        v = poisson.class_field_target(xa, CHARGES, self.gamma, labels, LABELS)
        return v[:, :-1].reshape(x.shape), v[:, -1]


def labelled_config(name, **sampling_keys):
    c = shipped_config(name)
    c.data.shape = (3,)
    c.model.label_dim = NUM_CLASSES
    c.sampling.guidance_tmin = 0.0    # guidance at every time: the exact fields need no limit
    c.sampling.update(**sampling_keys)
    return c


def assert_lands_on_its_class(out, labels, tol, share=0.99):
    dist, which = torch.cdist(out.double(), CHARGES).min(1)
    on_class = (dist < tol) & (LABELS[which] == labels)
    assert on_class.float().mean() >= share, (on_class.float().mean(), dist.max())


@pytest.mark.parametrize("w", [1.0, 3.0])
def test_pfgm_exact_class_field_carries_every_sample_onto_its_class(w):
    c = labelled_config("poisson/toy2d", ode_solver="heun", N=80, z_min=1e-4, z_max=40.0, upper_norm=400.0,
                        guidance=w)
    method = methods.get_method(c)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % NUM_CLASSES
    x0 = method.prior_sample(300, (3,), "cpu", g).double()
    out, nfe = method.sample(ExactClassField(), 300, (3,), x=x0, labels=labels)
    assert nfe == 2 * 80 - 1
    assert_lands_on_its_class(out, labels, 1e-2)


def test_pfgm_guidance_zero_is_unconditional_and_labels_come_from_class_label():
    """w = 0 follows the field of all the charges (each charge gets samples); sampling.class_label = c
    sends every sample to class c."""
    c = labelled_config("poisson/toy2d", ode_solver="heun", N=80, z_min=1e-4, z_max=40.0, upper_norm=400.0,
                        guidance=0.0)
    method = methods.get_method(c)
    x0 = method.prior_sample(300, (3,), "cpu", torch.Generator().manual_seed(1)).double()
    out, _ = method.sample(ExactClassField(), 300, (3,), x=x0, labels=torch.zeros(300, dtype=torch.long))
    ref, _ = sampling.backward_ode(
        lambda x, z: ExactClassField()(x, z, torch.zeros(len(x), NUM_CLASSES, dtype=x.dtype)), x0, z_max=40.0,
        z_min=1e-4, solver="heun", steps=80)
    torch.testing.assert_close(out, ref)
    assert set(LABELS[torch.cdist(out, CHARGES).argmin(1)].tolist()) == {0, 1, 2}
    out, _ = method.sample(ExactClassField(), 300, (3,), x=x0, class_label=2, guidance=1.0)
    assert_lands_on_its_class(out, torch.full((300,), 2), 1e-2)


class ExactClassDenoiser(nn.Module):
    """PFGM++'s 'network' F whose preconditioned denoiser is the posterior mean of the row's class charges."""

    def __init__(self, aug_dim, sigma_data):
        super().__init__()
        self.aug_dim, self.sigma_data = aug_dim, sigma_data
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, u, sigma, class_labels=None):
        c_skip, c_out, c_in, _ = (sampling.per_sample(c, u) for c in pfgmpp.preconditioning(sigma, self.sigma_data))
        x = u / c_in
        labels = torch.where(class_labels.sum(1) > 0, class_labels.argmax(1), -1)
        return (pfgmpp.class_posterior_mean(x, CHARGES, sigma, self.aug_dim, labels, LABELS) - c_skip * x) / c_out


@pytest.mark.parametrize("aug_dim,w", [(1, 1.0), (1, 3.0), (128, 1.0), (128, 3.0)])
def test_pfgmpp_exact_class_denoiser_carries_every_sample_onto_its_class(aug_dim, w):
    c = labelled_config("pfgmpp/toy2d", ode_solver="heun", N=60, sigma_max=40.0, sigma_min=1e-3, guidance=w)
    c.training.aug_dim = float(aug_dim)
    method = methods.get_method(c)
    labels = torch.arange(240) % NUM_CLASSES
    x0 = method.prior_sample(240, (3,), "cpu", torch.Generator().manual_seed(0)).double()
    out, _ = method.sample(ExactClassDenoiser(aug_dim, method.sigma_data), 240, (3,), x=x0, labels=labels)
    assert_lands_on_its_class(out, labels, 1e-2, share=0.97)


def test_pfgmpp_conditional_stf_loss_vanishes_for_the_exact_class_denoiser():
    """stf with labels: the target is the posterior over the batch's charges of the point's class (all of
    them when its label is dropped); the exact class denoiser has zero loss, a class-blind one does not."""
    c = labelled_config("pfgmpp/toy2d")
    c.training.update(aug_dim=8.0, stf=True, batch_size=6, small_batch_size=6, label_dropout=0.5)
    method = methods.get_method(c)
    net = ExactClassDenoiser(8, method.sigma_data)
    g = lambda: torch.Generator().manual_seed(3)
    assert method.loss(net, CHARGES, generator=g(), labels=LABELS).item() < 1e-10
    blind = lambda u, s, class_labels=None: net(u, s, torch.zeros_like(class_labels))
    blind_net = nn.Module()
    blind_net.dummy, blind_net.forward = net.dummy, blind
    assert method.loss(blind_net, CHARGES, generator=g(), labels=LABELS).item() > 1e-3


def test_pfgm_conditional_loss_vanishes_for_the_exact_class_field():
    c = labelled_config("poisson/toy2d")
    c.training.update(batch_size=6, small_batch_size=6, label_dropout=0.5)
    method = methods.get_method(c)
    gamma = c.training.gamma
    g = lambda: torch.Generator().manual_seed(4)
    assert method.loss(ExactClassField(gamma), CHARGES, generator=g(), labels=LABELS).item() < 1e-12
    # the same field without labels (every row null) misses the class targets
    c.training.label_dropout = 0.0
    blind = ExactClassField(gamma)
    blind.forward = lambda x, z, class_labels=None: ExactClassField.forward(blind, x, z, torch.zeros_like(class_labels))
    assert methods.get_method(c).loss(blind, CHARGES, generator=g(), labels=LABELS).item() > 1e-3


class ExactClassScore(nn.Module):
    """The score SDEs' 'network': the exact score of the class charges' perturbed law N(a y_j, std^2 I)."""

    def __init__(self, method):
        super().__init__()
        self.method = method
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, cond, class_labels=None):
        m = self.method
        if isinstance(m, VESDE):
            t = torch.log(cond / m.sigma_min) / math.log(m.sigma_max / m.sigma_min)
        else:
            t = cond / 999
        a, std = m.mean_coeff(t), m.marginal_std(t)
        labels = torch.where(class_labels.sum(1) > 0, class_labels.argmax(1), -1)
        mean = pfgmpp.class_posterior_mean(x / a[:, None], CHARGES, std / a, math.inf, labels, LABELS)
        score = (a[:, None] * mean - x) / std[:, None] ** 2
        return score / m.output_to_score(torch.ones_like(x), t)


@pytest.mark.parametrize("sde", ["vp", "ve"])
@pytest.mark.parametrize("w", [1.0, 3.0])
def test_sde_exact_class_score_carries_every_sample_onto_its_class(sde, w):
    c = labelled_config(f"{sde}/toy2d", ode_solver="heun", N=200, guidance=w)
    method = methods.get_method(c)
    labels = torch.arange(240) % NUM_CLASSES
    x0 = method.prior_sample(240, (3,), "cpu", torch.Generator().manual_seed(0), dtype=torch.float64)
    out, _ = method.sample(ExactClassScore(method), 240, (3,), x=x0, labels=labels)
    assert_lands_on_its_class(out, labels, 5e-2, share=0.97)


def test_random_classes_follow_per_image_seeds():
    """With per-image generators the random class of a sample depends on its own seed only."""
    from pfgm.seeds import StackedGenerator
    a = conditioning.asked_labels(6, 10, -1, StackedGenerator(range(6)))
    b = conditioning.asked_labels(3, 10, -1, StackedGenerator(range(3, 6)))
    assert a[3:].tolist() == b.tolist() and a.min() >= 0 and a.max() < 10


def test_guidance_applies_from_guidance_tmin_on():
    """sampling.guidance_tmin: below it the class prediction alone (one call, undoubled batch), above it
    u + w (c - u); a (B,) time tensor is split per row."""
    calls = []

    def fn(x, t, lab):
        calls.append(len(x))
        return torch.ones_like(x) * (lab >= 0).to(x.dtype)[:, None]   # c = 1, u = 0

    g = conditioning.guided(fn, torch.tensor([0, 1]), 3.0, tmin=0.5)
    x = torch.zeros(2, 1)
    assert g(x, 0.4).tolist() == [[1.0], [1.0]] and calls == [2]
    assert g(x, 0.5).tolist() == [[3.0], [3.0]] and calls == [2, 4]
    assert g(x, torch.tensor([0.1, 0.9])).tolist() == [[1.0], [3.0]]
