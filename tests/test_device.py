"""The package on the accelerator: run with CUDA present (tools/gpu_check.py runs this file first), skipped
otherwise; PFGM_TEST_DEVICE=cpu runs the same checks on the CPU (tools/gpu_check.py --device cpu)."""
import os

import pytest
import torch

from conftest import tiny_config
from pfgm import methods, models, poisson, precision, sampling
from pfgm.datasets import feed
from pfgm.datasets.image_base import ArraySource, ImageDataset

DEVICE = os.environ.get("PFGM_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="no CUDA device (PFGM_TEST_DEVICE=cpu runs these on the CPU)")


@pytest.fixture
def device():
    return torch.device(DEVICE)


def test_field_target_on_the_device_agrees_with_the_cpu_float64_result(device):
    g = torch.Generator().manual_seed(0)
    data = torch.randn(1024, 3 * 8 * 8, generator=g)
    x = poisson.perturb(data[:128], M=280, tau=0.03, sigma_end=0.01, generator=g)
    ref = poisson.field_target(x.double(), data.double(), 5.0)
    got = poisson.field_target(x.to(device), data.to(device), 5.0).cpu().double()
    # TF32 allowed for matmuls on the device: the nearest charges are recomputed exactly
    assert ((got - ref).norm(dim=1) / ref.norm(dim=1)).max() < 1e-4


def test_rk45_runs_on_the_device_with_the_cpu_nfe(device):
    a = torch.tensor([[-1.0, 2.0], [-2.0, -0.5]])
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    out_cpu, nfe_cpu = sampling.odeint(lambda x, t: x @ a.T.to(x.device), x, 0.0, 2.0, solver="rk45")
    out_dev, nfe_dev = sampling.odeint(lambda x, t: x @ a.T.to(x.device), x.to(device), 0.0, 2.0, solver="rk45")
    assert out_dev.device.type == device.type and abs(nfe_dev - nfe_cpu) <= 6
    assert torch.allclose(out_dev.cpu(), out_cpu, rtol=1e-3, atol=1e-3)


def test_feed_keeps_uint8_images_on_the_device(device):
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    ds = ImageDataset("fake", (3, 8, 8), ArraySource(images, 255.0), ArraySource(images[:8], 255.0),
                      random_flip=True)
    c = tiny_config()
    c.training.update(batch_size=16, small_batch_size=8)
    f = feed.make_feed(ds, c, device)
    assert f.images.device.type == device.type and f.images.dtype == torch.uint8
    x = f.shard(3)
    cpu = feed.make_feed(ds, c, torch.device("cpu")).shard(3)
    assert x.device.type == device.type
    # CUDA divides by a Python float as a multiplication by its reciprocal: within an ulp of the CPU's division
    torch.testing.assert_close(x.cpu(), cpu, rtol=0, atol=2.5e-7)


@pytest.mark.parametrize("mode", ["no", "bf16"])
def test_network_forward_backward_under_each_precision(device, mode):
    c = tiny_config("ve/digits_ncsnpp", model=dict(nf=16, num_res_blocks=1), mixed_precision=mode)
    c.device = str(device)
    method = methods.get_method(c)
    model = models.build(c, device)
    net = precision.Precision(c, device).network(model)
    batch = torch.rand(8, *(c.data.num_channels, c.data.image_size, c.data.image_size), device=device) * 2 - 1
    loss = method.loss(net, batch, generator=torch.Generator(device=device).manual_seed(0))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_pfgm_sampler_on_the_device_agrees_with_the_cpu(device):
    c = tiny_config(model=dict(nf=32, num_layers=2))
    method = methods.get_method(c)
    torch.manual_seed(0)
    model = models.build(c, torch.device("cpu")).eval()
    x = method.prior_sample(64, (2,), "cpu", torch.Generator().manual_seed(0))
    with torch.no_grad():
        out_cpu, _ = method.sample(model, 64, (2,), x=x, ode_solver="heun", N=20)
        out_dev, _ = method.sample(model.to(device), 64, (2,), x=x.to(device), ode_solver="heun", N=20)
    assert torch.allclose(out_dev.cpu(), out_cpu, rtol=1e-3, atol=1e-3)
