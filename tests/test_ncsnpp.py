"""NCSN++ / DDPM++ networks: checkpoint layout against the original's state dicts, EMA order,
forward semantics of small networks, and the FIR resampling ops against a float64 numpy reference."""
import json
import math
from pathlib import Path

import ml_collections
import numpy as np
import pytest
import torch

from pfgm.models import get_model_class, up_or_down_sampling as ud
from pfgm.models.ncsnpp import NCSNpp

REF_DIR = Path(__file__).resolve().parent / "data"  # name -> shape of the original networks' state dicts


def make_config(sde="poisson", **overrides):
    """poisson/cifar10_ddpmpp (the paper's CIFAR-10 settings); overrides as section__key=value."""
    c = ml_collections.ConfigDict()
    c.training = ml_collections.ConfigDict(dict(sde=sde, continuous=True))
    c.data = ml_collections.ConfigDict(dict(image_size=32, num_channels=3, centered=True))
    c.model = ml_collections.ConfigDict(dict(
        name="ncsnpp", nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,),
        dropout=0.1, resamp_with_conv=True, conditional=True, fir=False, fir_kernel=[1, 3, 3, 1],
        skip_rescale=True, resblock_type="biggan", progressive="none", progressive_input="none",
        progressive_combine="sum", attention_type="ddpm", embedding_type="positional", fourier_scale=16,
        init_scale=0.0, conv_size=3, sigma_min=0.01, sigma_max=50.0, num_scales=1000,
        scale_by_sigma=False, nonlinearity="swish", normalization="GroupNorm"))
    for key, value in overrides.items():
        section, name = key.split("__")
        c[section][name] = value
    return c


NCSNPP_FIR = dict(model__embedding_type="fourier", model__fir=True, model__progressive_input="residual")
CONFIGS = {
    "cifar10_ddpmpp": make_config(),
    "cifar10_ddpmpp_deep": make_config(model__num_res_blocks=8),
    "cifar10_ncsnpp": make_config(**NCSNPP_FIR),
    # score_sde baselines (Song et al. 2021, their configs)
    "cifar10_ddpmpp_continuous": make_config("vpsde"),
    "cifar10_ncsnpp_continuous": make_config("vesde", data__centered=False, model__scale_by_sigma=True,
                                             **NCSNPP_FIR),
}


def _load_reference():
    ref = {}
    for name in ("official-ncsnpp-state-dict.json", "official-score-sde-state-dict.json"):
        ref.update(json.loads((REF_DIR / name).read_text()))
    return ref


REFERENCE = _load_reference()


def _meta_model(config):
    with torch.device("meta"):
        return NCSNpp(config)


def _shapes(model):
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


# ----------------------------------------------------------------------------- (1) layout


@pytest.mark.parametrize("name", sorted(n for n in CONFIGS if n != "cifar10_ncsnpp"))
def test_state_dict_matches_official(name):
    model = _meta_model(CONFIGS[name])
    # Same names, same shapes, same order (the order also fixes the EMA list order).
    assert _shapes(model) == [(k, list(v)) for k, v in REFERENCE[name].items()]


def test_state_dict_sizes_of_the_original_networks():
    expected = {  # (entries, parameters, len(all_modules), trainable tensors)
        "cifar10_ddpmpp": (565, 61_805_572, 55, 564),
        "cifar10_ddpmpp_deep": (957, 106_633_732, 91, 956),
        "cifar10_ncsnpp": (572, 62_760_068, 59, 570),
        "cifar10_ddpmpp_continuous": (565, 61_804_419, 55, 564),
        "cifar10_ncsnpp_continuous": (572, 62_758_915, 59, 570),
    }
    for name, (entries, params, n_mod, n_train) in expected.items():
        model = _meta_model(CONFIGS[name])
        sd = model.state_dict()
        assert len(sd) == entries, name
        assert sum(p.numel() for p in model.parameters()) == params, name
        assert len(model.all_modules) == n_mod, name
        assert len([p for p in model.parameters() if p.requires_grad]) == n_train, name
        assert sd["sigmas"].dtype == torch.float64 and sd["sigmas"].shape == (1000,)
    ncsn = _meta_model(CONFIGS["cifar10_ncsnpp"])
    assert sum(p.numel() for p in ncsn.parameters() if p.requires_grad) == 62_759_940
    sd = ncsn.state_dict()
    for i in (9, 19, 25):  # input-pyramid Downsample modules
        assert f"all_modules.{i}.Conv2d_0.weight" in sd
    assert list(sd["all_modules.58.weight"].shape) == [4, 128, 3, 3]
    ddpm = _meta_model(CONFIGS["cifar10_ddpmpp"]).state_dict()
    assert list(ddpm["all_modules.0.weight"].shape) == [512, 128]
    assert list(ddpm["all_modules.54.weight"].shape) == [4, 128, 3, 3]


def test_poisson_ncsnpp_is_ve_baseline_plus_z_channel():
    name = "cifar10_ncsnpp_continuous"
    expected = [(k, list(v)) for k, v in REFERENCE[name].items()]
    expected[-2] = ("all_modules.58.weight", [4, 128, 3, 3])
    expected[-1] = ("all_modules.58.bias", [4])
    assert _shapes(_meta_model(CONFIGS["cifar10_ncsnpp"])) == expected


# ----------------------------------------------------------------------------- (2) EMA order


def test_ema_parameter_order():
    for name, fourier in (("cifar10_ddpmpp", False), ("cifar10_ncsnpp", True)):
        model = _meta_model(CONFIGS[name])
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        keys = [k for k in model.state_dict() if k != "sigmas"]
        if fourier:
            assert keys[0] == "all_modules.0.W" and not model.all_modules[0].W.requires_grad
            keys = keys[1:]
        assert trainable == keys
        assert len(trainable) == (570 if fourier else 564)
        if name in REFERENCE:
            assert trainable == [k for k in REFERENCE[name] if k not in ("sigmas", "all_modules.0.W")]


# ----------------------------------------------------------------------------- (3) small networks


def small_config(sde="poisson", **overrides):
    base = dict(model__nf=16, model__ch_mult=(1, 2), model__num_res_blocks=1, model__attn_resolutions=(4,),
                data__image_size=8, model__num_scales=10)
    base.update(overrides)
    return make_config(sde, **base)


COMBOS = [  # (resblock_type, embedding_type, fir, progressive, progressive_input, combine)
    ("biggan", "positional", False, "none", "none", "sum"),      # DDPM++
    ("biggan", "fourier", True, "none", "residual", "sum"),      # NCSN++
    ("biggan", "fourier", True, "output_skip", "input_skip", "sum"),
    ("biggan", "positional", False, "residual", "input_skip", "cat"),
    ("biggan", "fourier", False, "residual", "residual", "sum"),
    ("ddpm", "positional", False, "none", "none", "sum"),
    ("ddpm", "fourier", True, "residual", "input_skip", "cat"),
    ("ddpm", "positional", True, "output_skip", "residual", "sum"),
    ("ddpm", "fourier", False, "output_skip", "input_skip", "cat"),
]
SDES = ("poisson", "vesde", "vpsde")


def _combo_config(sde, combo, **extra):
    rb, emb, fir, prog, prog_in, comb = combo
    return small_config(sde, model__resblock_type=rb, model__embedding_type=emb, model__fir=fir,
                        model__progressive=prog, model__progressive_input=prog_in,
                        model__progressive_combine=comb, **extra)


def _randomize(model, seed=0):
    """Give the zero-initialised output layers non-trivial values so outputs depend on everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(str(v) for v in c))
@pytest.mark.parametrize("sde", SDES)
def test_small_network(sde, combo):
    config = _combo_config(sde, combo)
    if sde == "poisson" and combo[3] == "output_skip":
        with pytest.raises(ValueError, match="output_skip"):
            NCSNpp(config)
        return
    torch.manual_seed(0)
    model = _randomize(NCSNpp(config))
    x = torch.randn(2, 3, 8, 8)
    cond = torch.tensor([0.5, 3.0])
    out = model(x, cond)
    if sde == "poisson":
        v_x, v_z = out
        assert v_x.shape == x.shape and v_z.shape == (2,)
        loss = v_x.square().mean() + v_z.square().mean()
        outs = torch.cat([v_x.flatten(), v_z])
    else:
        assert isinstance(out, torch.Tensor) and out.shape == x.shape
        loss = out.square().mean()
        outs = out.flatten()
    assert torch.isfinite(outs).all()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["all_modules.0.weight" if combo[1] == "positional" else "all_modules.1.weight"].abs().sum() > 0
    assert sum(float(g.abs().sum()) for g in grads.values()) > 0
    if combo[1] == "fourier":
        assert model.all_modules[0].W.grad is None

    # DataParallel-style checkpoint round trip ('module.' prefix), strict load, identical eval outputs.
    model.eval()
    saved = {"module." + k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    fresh = NCSNpp(config)
    fresh.load_state_dict({k[len("module."):]: v for k, v in saved.items()}, strict=True)
    fresh.eval()
    with torch.no_grad():
        a, b = model(x, cond), fresh(x, cond)
    a = a if isinstance(a, torch.Tensor) else torch.cat([a[0].flatten(), a[1]])
    b = b if isinstance(b, torch.Tensor) else torch.cat([b[0].flatten(), b[1]])
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_poisson_head_is_mean_of_extra_channel():
    config = small_config()
    torch.manual_seed(0)
    model = _randomize(NCSNpp(config)).eval()
    captured = {}
    model.all_modules[-1].register_forward_hook(lambda mod, inp, out: captured.update(h=out))
    x, z = torch.randn(3, 3, 8, 8), torch.tensor([0.01, 1.0, 30.0])
    with torch.no_grad():
        v_x, v_z = model(x, z)
    h = captured["h"]
    assert h.shape == (3, 4, 8, 8)
    torch.testing.assert_close(v_x, h[:, :3])
    torch.testing.assert_close(v_z, h[:, 3].mean(dim=(1, 2)))


def test_embedding_inputs():
    """Positional embedding sees raw cond, Fourier sees log cond."""
    for emb in ("positional", "fourier"):
        model = NCSNpp(small_config(model__embedding_type=emb)).eval()
        seen = {}
        first_linear = model.all_modules[0 if emb == "positional" else 1]
        first_linear.register_forward_hook(lambda mod, inp, out: seen.update(e=inp[0]))
        z = torch.tensor([0.3, 7.0])
        with torch.no_grad():
            model(torch.randn(2, 3, 8, 8), z)
        e = seen["e"]
        if emb == "positional":
            freqs = torch.exp(-torch.arange(8) * math.log(10000) / 7)
            arg = z[:, None] * freqs
        else:
            arg = 2 * math.pi * torch.log(z)[:, None] * model.all_modules[0].W
        # float32 arguments reach |arg| ~ 1e3 for the Fourier features: allow for rounding order
        torch.testing.assert_close(e, torch.cat([torch.sin(arg), torch.cos(arg)], dim=1), atol=2e-4, rtol=0)


def test_centering_and_scale_by_sigma():
    torch.manual_seed(0)
    cfg = small_config("vesde", model__embedding_type="fourier", model__fir=True,
                       model__progressive_input="residual", data__centered=False, model__scale_by_sigma=True)
    model = _randomize(NCSNpp(cfg)).eval()
    cfg2 = small_config("vesde", model__embedding_type="fourier", model__fir=True,
                        model__progressive_input="residual", data__centered=True, model__scale_by_sigma=False)
    plain = NCSNpp(cfg2).eval()
    plain.load_state_dict(model.state_dict())
    x, sigma = torch.rand(2, 3, 8, 8), torch.tensor([0.05, 20.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, sigma), plain(2 * x - 1, sigma) / sigma[:, None, None, None])
    # a scalar cond is broadcast to the batch
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor(0.5)), model(x, torch.full((2,), 0.5)))


def test_registered_and_config_errors():
    assert get_model_class("ncsnpp") is NCSNpp
    with pytest.raises(ValueError, match="resblock_type"):
        NCSNpp(small_config(model__resblock_type="foo"))
    with pytest.raises(ValueError, match="training.sde"):
        NCSNpp(small_config("edm"))


# ----------------------------------------------------------------------------- (4) FIR ops


def ref_upfirdn2d(x, k, up=1, down=1, pad=(0, 0)):
    """Direct float64 definition: out[i, j] = sum over input pixels (s, r) of
    x[s, r] * k[kh-1-ty, kw-1-tx], ty = s*up + pad0 - i*down (valid when 0 <= ty < kh)."""
    x = np.asarray(x, np.float64)
    k = np.asarray(k, np.float64)
    kh, kw = k.shape
    *lead, h, w = x.shape
    p0, p1 = pad
    oh = (h * up + p0 + p1 - kh) // down + 1
    ow = (w * up + p0 + p1 - kw) // down + 1
    out = np.zeros((*lead, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for s in range(h):
                ty = s * up + p0 - i * down
                if not 0 <= ty < kh:
                    continue
                for r in range(w):
                    tx = r * up + p0 - j * down
                    if 0 <= tx < kw:
                        out[..., i, j] += x[..., s, r] * k[kh - 1 - ty, kw - 1 - tx]
    return out


def ref_correlate(x, w, stride=1, pad=0):
    """Cross-correlation (B, Cin, H, W) * (Cout, Cin, kh, kw) in float64."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    co, ci, kh, kw = w.shape
    oh = (x.shape[2] - kh) // stride + 1
    ow = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], co, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("bchw,ochw->bo", patch, w)
    return out


@pytest.mark.parametrize("up,down,pad,shape,kern", [
    (1, 1, (1, 2), (2, 3, 5, 6), (1, 3, 3, 1)),
    (2, 1, (2, 1), (1, 2, 4, 5), (1, 3, 3, 1)),
    (1, 2, (1, 1), (2, 1, 8, 6), (1, 3, 3, 1)),
    (3, 2, (0, -1), (1, 2, 5, 4), "asym"),
    (2, 2, (-1, 3), (1, 1, 6, 7), (1, 2, 1)),
])
def test_upfirdn2d_matches_numpy(up, down, pad, shape, kern):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    k = rng.standard_normal((3, 4))[:, :3] if kern == "asym" else ud.setup_kernel(kern)
    got = ud.upfirdn2d(torch.from_numpy(x), torch.from_numpy(k), up=up, down=down, pad=pad).numpy()
    np.testing.assert_allclose(got, ref_upfirdn2d(x, k, up, down, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h,w", [(4, 4), (8, 6)])
def test_fir_resampling_ops(h, w):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, h, w))
    xt = torch.from_numpy(x)
    k = ud.setup_kernel((1, 3, 3, 1))
    assert k.sum() == pytest.approx(1.0)

    up = ud.upsample_2d(xt, (1, 3, 3, 1)).numpy()
    assert up.shape == (2, 3, 2 * h, 2 * w)
    np.testing.assert_allclose(up, ref_upfirdn2d(x, 4 * k, up=2, pad=(2, 1)), rtol=1e-12, atol=1e-12)
    down = ud.downsample_2d(xt, (1, 3, 3, 1)).numpy()
    assert down.shape == (2, 3, h // 2, w // 2)
    np.testing.assert_allclose(down, ref_upfirdn2d(x, k, down=2, pad=(1, 1)), rtol=1e-12, atol=1e-12)
    # FIR resampling preserves a constant image away from the borders.
    ones = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(ud.upsample_2d(ones, (1, 3, 3, 1))[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12,
                                                                                              dtype=torch.float64))

    wt = rng.standard_normal((5, 3, 3, 3))
    # fused FIR + stride-2 conv
    got = ud.conv_downsample_2d(xt, torch.from_numpy(wt), k=(1, 3, 3, 1)).numpy()
    ref = ref_correlate(ref_upfirdn2d(x, k, pad=(2, 2)), wt, stride=2)
    assert got.shape == (2, 5, h // 2, w // 2)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    # fused upsample conv: zero-stuffing, full cross-correlation with w, then FIR
    got = ud.upsample_conv_2d(xt, torch.from_numpy(wt), k=(1, 3, 3, 1)).numpy()
    stuffed = np.zeros((2, 3, 2 * h - 1, 2 * w - 1))
    stuffed[..., ::2, ::2] = x
    ref = ref_upfirdn2d(ref_correlate(stuffed, wt, pad=2), 4 * k, pad=(1, 1))
    assert got.shape == (2, 5, 2 * h, 2 * w)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)

    # naive resampling
    np.testing.assert_array_equal(ud.naive_upsample_2d(xt).numpy(), x.repeat(2, axis=2).repeat(2, axis=3))
    np.testing.assert_allclose(ud.naive_downsample_2d(xt).numpy(),
                               x.reshape(2, 3, h // 2, 2, w // 2, 2).mean(axis=(3, 5)), rtol=1e-12)
