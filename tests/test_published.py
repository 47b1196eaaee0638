"""Import of released EDM / PFGM++ networks (pfgm/published.py, pfgm/safe_pickle.py, tools/import_checkpoint.py).

The fixtures are written by tests/edm_pickles.py with the structure of the originals' files: every SongUNet
layer and the EDMPrecond around them pickled as torch_utils.persistence does it (the call
_reconstruct_persistent_obj(meta), meta carrying the class name, the state and the module's source), inside
EDM's plain-pickled dict or PFGM++'s torch.save dict. The embedded source is a payload that would create the
file $PFGM_PAYLOAD_MARKER if it were ever executed, and the command-line test puts a torch_utils package that
does the same on import on the path: the marker must never appear.
"""
import collections
import math
import os
import pickle
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, shipped_config
from edm_pickles import PAYLOAD, precond_tree, write
from pfgm import checkpoint, methods, models, published, run_config, safe_pickle
from pfgm.config_checks import ConfigError
from pfgm.run_utils import load_config_file

sys.path.insert(0, os.path.join(ROOT, "tools"))
import import_checkpoint as tool  # noqa: E402

ARCH = dict(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,), embedding_type="fourier",
            channel_mult_noise=2, encoder_type="residual", decoder_type="standard", resample_filter=(1, 3, 3, 1))


def fixture_network(label_dim=0, augment_dim=9, pfgmpp=True, D=128, seed=0, unet_class="SongUNet",
                    precond_class="EDMPrecond"):
    """(EDMPrecond-like Node tree around a tiny 8x8 grey SongUNet with O(1) random weights, its state_dict)."""
    config = shipped_config("pfgmpp/digits_songunet")
    config.model.update(ARCH, label_dim=label_dim, augment_dim=augment_dim, dropout=0.13)
    torch.manual_seed(seed)
    unet = models.build(config, "cpu")
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(torch.randn_like(p) / max(1, p[0].numel()) ** 0.5)
    return precond_tree(unet, config, pfgmpp, D, unet_class, precond_class), unet.state_dict()


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "payload-ran"
    monkeypatch.setenv("PFGM_PAYLOAD_MARKER", str(path))
    yield path
    assert not path.exists(), "the pickle's embedded code was executed"


@pytest.mark.parametrize("kind,D", [("pt", 128), ("pt", 2048), ("pkl", math.inf)])
def test_import_gives_the_same_network_and_D(tmp_path, marker, kind, D):
    top, weights = fixture_network(pfgmpp=kind == "pt", D=D if kind == "pt" else 128)
    src = write(tmp_path / f"file.{kind}", top, kind)
    config_path, ckpt, settings = published.import_checkpoint(str(src), str(tmp_path / "imp"))
    assert settings["D"] == D
    config = load_config_file(config_path)
    config.device = "cpu"
    assert config.training.aug_dim == D and config.model.name == "songunet" and config.model.augment_dim == 9
    assert (config.sampling.sigma_min, config.sampling.sigma_max, config.model.sigma_data) == (0.002, 80.0, 0.5)
    model = checkpoint.load_ema_model(config, ckpt, "cpu")
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k
    method = methods.get_method(config)
    assert method.D == D
    x, sigma = torch.randn(3, 1, 8, 8), torch.tensor([0.01, 1.0, 30.0])
    fresh = models.build(config, "cpu").eval()
    fresh.load_state_dict(weights)
    with torch.no_grad():
        torch.testing.assert_close(method.denoiser(model)(x, sigma), method.denoiser(fresh)(x, sigma), rtol=0, atol=0)
    assert int(os.path.basename(ckpt).split("_")[1].split(".")[0]) == (12345 if kind == "pt" else 0)
    # the checkpoint records DIR/config.py's config, so eval checks a config against the imported network
    state = checkpoint.read_checkpoint(ckpt)
    record = run_config.recorded(state)
    assert record["model.name"] == "songunet" and record["training.aug_dim"] == D
    run_config.check_eval(state, config, ckpt)
    config.model.model_channels = 32
    with pytest.raises(ConfigError, match="model.model_channels"):
        run_config.check_eval(state, config, ckpt)


def test_conditional_network(tmp_path, marker):
    top, weights = fixture_network(label_dim=10, pfgmpp=None)
    src = write(tmp_path / "network-snapshot-000200.pkl", top, "pkl")
    config_path, ckpt, settings = published.import_checkpoint(str(src), str(tmp_path / "imp"))
    config = load_config_file(config_path)
    config.device = "cpu"
    assert settings["label_dim"] == config.model.label_dim == 10 and math.isinf(settings["D"])
    assert ckpt.endswith("checkpoint_200.pth")
    model = checkpoint.load_ema_model(config, ckpt, "cpu")
    assert torch.equal(model.state_dict()["map_label.weight"], weights["map_label.weight"])


def test_the_earlier_pfgmpp_flag_names(tmp_path, marker, capsys):
    """PFGM++'s code named its flag pfgmv2 until 2023-02-07 (beside a pfgm flag for a z-predicting variant):
    a pfgmv2 state is PFGM++ with its D, never read as EDM's D = inf; a pfgm = True one is refused."""
    for name, value in (("pfgm", False), ("pfgmv2", True)):
        top, _ = fixture_network(pfgmpp=None)
        top.D, top.N, top.pfgm, top.pfgmv2 = 2048, 64, False, False
        setattr(top, name, value)
        _, _, settings = published.import_checkpoint(str(write(tmp_path / f"{name}.pt", top, "pt")),
                                                     str(tmp_path / f"imp_{name}"))
        assert settings["D"] == (2048 if name == "pfgmv2" else math.inf)
    top.pfgm = True
    _refused(tmp_path, write(tmp_path / "z.pt", top, "pt"), capsys, "pfgm = True")


def test_an_imported_cifar10_state_is_the_checkpoint_eval_selects(tmp_path, marker):
    """CIFAR-10's defaults evaluate snapshots begin_ckpt..end_ckpt x snapshot_freq; the imported step is the file's
    (PFGM++'s image count), so the imported config asks for the newest checkpoint instead."""
    from pfgm import evaluate
    config = shipped_config("pfgmpp/cifar10_songunet_ncsnpp_d2048")
    config.model.update(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,))
    top = precond_tree(models.build(config, "cpu"), config, True, 2048)
    src = write(tmp_path / "training-state-200000.pt", top, "pt", step=200_000_000)
    config_path, ckpt, settings = published.import_checkpoint(str(src), str(tmp_path / "imp"), "/data/cifar10")
    assert (settings["resolution"], settings["channels"], settings["D"]) == (32, 3, 2048)
    assert evaluate.select_checkpoints(load_config_file(config_path), str(tmp_path / "imp")) == [(200_000_000, ckpt)]


def _refused(tmp_path, src, capsys, *words):
    work = tmp_path / "imp"
    assert tool.main([str(src), "--workdir", str(work)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("pfgm: error:"), err
    for w in words:
        assert w in err, err
    assert not (work / "config.py").exists() and not checkpoint.list_checkpoints(str(work))


@pytest.mark.parametrize("unet,precond", [("DhariwalUNet", "EDMPrecond"), ("SongUNet", "VPPrecond")])
def test_other_classes_are_refused(tmp_path, marker, capsys, unet, precond):
    top, _ = fixture_network(unet_class=unet, precond_class=precond)
    _refused(tmp_path, write(tmp_path / "x.pkl", top, "pkl"), capsys, unet if precond == "EDMPrecond" else precond)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_an_unknown_global_is_refused_and_never_run(tmp_path, marker, capsys):
    top, _ = fixture_network()
    src = tmp_path / "evil.pkl"
    write(src, top, "pkl")
    with open(src, "wb") as f:
        pickle.dump(dict(ema=Payload(marker)), f)
    _refused(tmp_path, src, capsys, "system")


@pytest.mark.parametrize("kind", ["pkl", "pt"])
def test_a_truncated_file_is_refused(tmp_path, marker, capsys, kind):
    top, _ = fixture_network()
    src = write(tmp_path / f"x.{kind}", top, kind)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    _refused(tmp_path, src, capsys, "truncated")


def test_an_occupied_workdir_is_not_overwritten(tmp_path, marker, capsys):
    top, _ = fixture_network()
    src = write(tmp_path / "x.pt", top, "pt")
    work = tmp_path / "imp"
    work.mkdir()
    (work / "config.py").write_text("keep me")
    assert tool.main([str(src), "--workdir", str(work)]) == 2
    assert (work / "config.py").read_text() == "keep me" and "already holds" in capsys.readouterr().err


def test_safe_pickle_reads_tensors_of_both_formats(tmp_path):
    value = dict(a=torch.arange(6.0).reshape(2, 3)[:, 1:], b=collections.OrderedDict(c=torch.ones(2, dtype=torch.int64)),
                 s={1, 2}, f=torch.nn.Parameter(torch.full((2,), 0.5, dtype=torch.float16)))
    with open(tmp_path / "v.pkl", "wb") as f:
        pickle.dump(value, f)
    torch.save(value, tmp_path / "v.pt")
    for name in ("v.pkl", "v.pt"):
        got = safe_pickle.load(str(tmp_path / name))
        assert torch.equal(got["a"], value["a"]) and torch.equal(got["b"]["c"], value["b"]["c"])
        assert got["s"] == {1, 2} and got["f"].dtype == torch.float16 and torch.equal(got["f"], value["f"].detach())


@pytest.mark.e2e
def test_import_then_eval_from_the_command_line(tmp_path, marker):
    """tools/import_checkpoint.py, then pfgm.main --mode eval from DIR/config.py, with a torch_utils package
    on the path whose import would create the marker (as where the original code is installed)."""
    top, _ = fixture_network(pfgmpp=True, D=64)
    src = write(tmp_path / "training-state-000100.pt", top, "pt")
    evil = tmp_path / "evil" / "torch_utils"
    evil.mkdir(parents=True)
    (evil / "__init__.py").write_text(PAYLOAD)
    (evil / "persistence.py").write_text(PAYLOAD)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path / 'evil'}")
    work = tmp_path / "imp"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "import_checkpoint.py"), str(src),
                        "--workdir", str(work)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "D = 64" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "pfgm.main", "--config", str(work / "config.py"), "--workdir", str(work),
                        "--mode", "eval", "--config.device=cpu", "--config.eval.num_samples=16",
                        "--config.eval.batch_size=16"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (work / "eval" / "ckpt_12345" / "samples.npz").exists()


def test_a_malformed_precond_state_is_refused(tmp_path, marker, capsys):
    top, _ = fixture_network(pfgmpp=True)
    del top.D   # PFGM++'s flag without its D
    _refused(tmp_path, write(tmp_path / "x.pt", top, "pt"), capsys, "malformed", "D")
