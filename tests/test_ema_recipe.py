"""The EMA (score_sde's fixed rate and EDM's half-life with ramp-up), EDM's learning-rate ramp over images
and the nan_to_num of non-finite gradients: closed forms and references written out here."""
import math

import pytest
import torch

from conftest import tiny_config
from pfgm import config_checks, train
from pfgm.models.ema import ExponentialMovingAverage, edm_beta


def _net(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.SiLU(), torch.nn.Linear(7, 3))
    net[0].bias.requires_grad_(False)  # a frozen tensor stays out of the EMA
    return net


def _perturb(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def test_fixed_rate_update_is_bit_for_bit_the_per_tensor_loop():
    net = _net()
    ema = ExponentialMovingAverage(net, 0.999)
    shadow = [p.detach().clone() for p in net.parameters() if p.requires_grad]
    for k in range(25):
        _perturb(net, k)
        ema.update(net)
        decay = min(0.999, (1 + k + 1) / (10 + k + 1))
        for s, p in zip(shadow, [p for p in net.parameters() if p.requires_grad]):
            s.sub_((1.0 - decay) * (s - p))  # the loop every checkpoint so far was made with
    assert ema.num_updates == 25
    assert all(torch.equal(a, b) for a, b in zip(ema.shadow_params, shadow))


def test_edm_beta_closed_form():
    assert edm_beta(0, 512, 500e3, 0.05) == 0.0                          # the first update copies
    assert edm_beta(10e6, 512, 500e3, 0.05) == 0.5 ** (512 / 500e3)     # past the ramp: the half-life
    assert math.isclose(edm_beta(2e6, 512, 500e3, 0.05), 0.5 ** (512 / 100e3), rel_tol=1e-15)
    assert edm_beta(2e6, 512, 500e3, 0.0) == 0.5 ** (512 / 500e3)       # no ramp-up


def test_edm_rule_halves_the_distance_in_one_half_life():
    """Toward a fixed target, the shadow's distance halves every halflife images (no ramp-up); the first
    update under the ramp-up copies the weights."""
    net, target = _net(0), _net(1)
    ema = ExponentialMovingAverage(net, 0.9999, halflife_kimg=0.064, rampup_ratio=0.0, batch_size=8)
    start = [s.double().clone() for s in ema.shadow_params]
    for k in range(8):  # 64 images = one half-life
        ema.update(target, cur_nimg=1000 + 8 * k)
    for s0, s, p in zip(start, ema.shadow_params, [p for p in target.parameters() if p.requires_grad]):
        torch.testing.assert_close(s.double() - p.double(), 0.5 * (s0 - p.double()), rtol=1e-5, atol=1e-6)
    ramped = ExponentialMovingAverage(net, 0.9999, halflife_kimg=500, rampup_ratio=0.05, batch_size=8)
    ramped.update(target, cur_nimg=0)
    assert all(torch.equal(s, p) for s, p in zip(ramped.shadow_params,
                                                 [p for p in target.parameters() if p.requires_grad]))


@pytest.mark.parametrize("rule", [dict(), dict(halflife_kimg=0.064, rampup_ratio=0.0, batch_size=8)])
def test_a_device_flag_gates_the_update_without_reading_it_to_the_host(rule):
    """apply = True is the plain update, False leaves the shadow; on meta tensors (which cannot be read), so the
    flag is never read to the host (a sync per step on CUDA)."""
    net, target = _net(0), _net(1)
    plain, gated, held = (ExponentialMovingAverage(net, 0.99, **rule) for _ in range(3))
    plain.update(target, cur_nimg=800)
    gated.update(target, cur_nimg=800, apply=torch.tensor(True))
    held.update(target, cur_nimg=800, apply=torch.tensor(False))
    for a, b in zip(plain.shadow_params, gated.shadow_params):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    trained = [p for p in net.parameters() if p.requires_grad]
    assert all(torch.equal(s, p) for s, p in zip(held.shadow_params, trained))
    meta = ExponentialMovingAverage(net.to("meta"), 0.99, **rule)
    meta.update(target.to("meta"), cur_nimg=800, apply=torch.tensor(True, device="meta"))


def test_edm_rule_needs_the_images_seen():
    ema = ExponentialMovingAverage(_net(), 0.999, halflife_kimg=1, batch_size=4)
    with pytest.raises(ValueError, match="cur_nimg"):
        ema.update(_net(1))
    with pytest.raises(ValueError, match="images per step"):
        ExponentialMovingAverage(_net(), 0.999, halflife_kimg=1)


def _config(**optim):
    c = tiny_config("pfgmpp/digits_ddpmpp", batch_size=8, small_batch_size=8)
    c.optim.update(**optim)
    return c


def test_learning_rate_ramps_over_images_as_edm():
    c = _config(warmup=0, lr_rampup_kimg=0.1, lr=1e-3)   # 100 images: 12.5 steps of 8
    assert train.learning_rate(c, 0) == 0.0               # EDM's first update: lr * 0 / ramp
    assert math.isclose(train.learning_rate(c, 5), 1e-3 * 40 / 100, rel_tol=1e-15)
    assert train.learning_rate(c, 13) == 1e-3 and train.learning_rate(c, 1000) == 1e-3
    c = _config(warmup=4, lr_rampup_kimg=0.0, lr=1e-3)   # the step warmup is unchanged
    assert [train.learning_rate(c, k) for k in range(5)] == [1e-3 * m for m in (0.25, 0.5, 0.75, 1, 1)]


def test_ramp_over_images_and_warmup_steps_are_not_both_allowed():
    with pytest.raises(config_checks.ConfigError, match="optim.lr_rampup_kimg"):
        config_checks.validate(_config(warmup=10, lr_rampup_kimg=1.0))
    with pytest.raises(config_checks.ConfigError, match="optim.nonfinite_grads"):
        config_checks.validate(_config(nonfinite_grads="zero"))


def test_repair_gradients_is_edms_nan_to_num():
    net = _net()
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    assert not train.repair_gradients(net.parameters())
    w = net[2].weight
    w.grad[0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    assert train.repair_gradients(net.parameters())
    assert w.grad[0, :3].tolist() == [0.0, 1e5, -1e5] and (w.grad[1:] == 1).all()


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["skip", "nan_to_num"])
def test_nonfinite_gradient_is_skipped_or_repaired(tmp_path, mode):
    """A finite loss with a NaN gradient entry: 'skip' leaves the weights and counts the step, 'nan_to_num'
    makes the update with that entry zeroed. A non-finite loss is skipped in both modes."""
    c = _config(nonfinite_grads=mode, grad_clip=0.0)
    t = train.Trainer(c, str(tmp_path / "run"))
    first = next(p for p in t.model.parameters() if p.requires_grad)
    hook = first.register_hook(lambda g: g.index_fill(0, torch.tensor([0]), float("nan")))
    before = [p.detach().clone() for p in t.model.parameters()]
    loss, _ = t.train_step(t.global_batch(1))       # step 1: lr of the warmup > 0
    changed = any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert t.nonfinite_total == (1 if mode == "skip" else 0) and changed == (mode == "nan_to_num")
    assert (loss != loss) == (mode == "skip")
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    hook.remove()
    real = t.method.loss
    t.method.loss = lambda *a, **k: real(*a, **k) * float("nan")
    before = [p.detach().clone() for p in t.model.parameters()]
    loss, _ = t.train_step(t.global_batch(2))
    assert loss != loss and all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


@pytest.mark.e2e
def test_trainer_feeds_edms_rule_the_images_seen(tmp_path):
    """EDM's rule in the loop: the first update (0 images seen) copies the weights; the next one uses the
    half-life of the images seen so far, min(halflife, 8 * 0.05) images."""
    c = _config()
    c.model.update(ema_halflife_kimg=500.0, ema_rampup_ratio=0.05)
    t = train.Trainer(c, str(tmp_path / "run"))
    t.train_step(t.global_batch(0))
    params = [p.detach().clone() for p in t.model.parameters() if p.requires_grad]
    assert all(torch.equal(s, p) for s, p in zip(t.ema.shadow_params, params))
    t.train_step(t.global_batch(1))
    beta = 0.5 ** (8 / (8 * 0.05))
    for s, old, new in zip(t.ema.shadow_params, params, [p for p in t.model.parameters() if p.requires_grad]):
        torch.testing.assert_close(s, new + beta * (old - new), rtol=1e-6, atol=1e-7)
