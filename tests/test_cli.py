"""The main job end to end on tiny settings, resume, and clean failures on bad input."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, override_flags, shipped_config
from conftest import tiny_config as shrunk
from pfgm import config_checks, evaluate, train

pytestmark = pytest.mark.e2e

def tiny_config():
    c = shrunk("poisson/toy2d", 30, batch_size=128, small_batch_size=32, snapshot_freq=20,
               snapshot_freq_for_preemption=10, log_freq=10, eval_freq=20, snapshot_num_samples=50,
               snapshot_sampling=True, model=dict(nf=32, num_layers=2))
    c.eval.update(num_samples=60, batch_size=40)
    c.sampling.update(ode_solver="euler", N=10)
    return c


TINY = override_flags(tiny_config(), "poisson/toy2d")  # the same settings for command-line runs


def cli(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "pfgm.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def tree_digest(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def test_train_then_eval_from_the_command_line(tmp_path):
    work = str(tmp_path / "run")
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", work, "--mode", "train", "--config.num_threads=2", *TINY)
    assert r.returncode == 0, r.stderr
    assert "on cpu x1 (2 CPU threads)" in r.stderr  # config.num_threads, over the test's OMP_NUM_THREADS=1
    for rel in ("checkpoints/checkpoint_20.pth", "checkpoints/checkpoint_30.pth",
                "checkpoints-meta/checkpoint.pth", "samples/iter_30/sample.png",
                "samples/iter_30/sample.npz", "loss.csv", "log.txt"):
        assert os.path.exists(os.path.join(work, rel)), rel
    rows = open(os.path.join(work, "loss.csv")).read().split()
    assert rows[0] == "step,loss,lr" and len(rows) == 4
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", work, "--mode", "eval", "--eval_folder",
            "ev", "--config.eval.enable_sampling=True", *TINY)
    assert r.returncode == 0, r.stderr
    report = json.load(open(os.path.join(work, "ev", "report_30.json")))
    assert report["nfe"] == 10 and report["num_samples"] == 60
    assert np.isfinite(report["sliced_wasserstein"]) and np.isfinite(report["eval_loss"])
    samples = np.load(os.path.join(work, "ev", "ckpt_30", "samples.npz"))["samples"]
    assert samples.shape == (60, 2) and np.isfinite(samples).all()
    assert os.path.exists(os.path.join(work, "ev", "ckpt_30", "samples.png"))


def test_resume_continues_from_the_meta_checkpoint(tmp_path):
    work = str(tmp_path / "run")
    c = tiny_config()
    c.training.n_iters = 20
    train.train(c, work)
    c.training.n_iters = 30
    t = train.Trainer(c, work)
    assert t.step == 20
    t.run()
    assert t.step == 30
    steps = [int(r.split(",")[0]) for r in open(os.path.join(work, "loss.csv")).read().split()[1:]]
    assert steps == [10, 20, 30]


@pytest.mark.parametrize("override,key", [
    ("--config.training.M=-1", "training.M"),
    ("--config.sampling.ode_solver=rk4", "sampling.ode_solver"),
    ("--config.sampling.z_min=50.0", "sampling.z_min"),
    ("--config.training.small_batch_size=4096", "training.small_batch_size"),
    ("--config.training.sde=poison", "training.sde"),
    ("--config.model.name=unet9000", "model.name"),
])
def test_bad_config_fails_naming_the_key_and_leaves_workdir_alone(tmp_path, override, key):
    work = tmp_path / "run"
    c = tiny_config()
    c.training.n_iters = 10
    train.train(c, str(work))
    before = tree_digest(work)
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train", *TINY, override)
    assert r.returncode != 0
    assert key in r.stderr
    assert "Traceback" not in r.stderr
    assert tree_digest(work) == before


def test_missing_data_file_fails_before_the_workdir_exists(tmp_path):
    work = tmp_path / "never"
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train", *TINY,
            "--config.data.dataset=points", f"--config.data.path={tmp_path / 'nope.npy'}")
    assert r.returncode != 0 and "data.path" in r.stderr
    assert not work.exists()


def test_points_file_trains(tmp_path):
    pts = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    np.save(tmp_path / "pts.npy", pts)
    c = tiny_config()
    c.data.dataset, c.data.path = "points", str(tmp_path / "pts.npy")
    c.training.n_iters = 10
    train.train(c, str(tmp_path / "run"))
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "checkpoint_10.pth")


def test_checkpoint_of_another_network_is_refused(tmp_path):
    work = str(tmp_path / "run")
    c = tiny_config()
    c.training.n_iters = 10
    train.train(c, work)
    before = tree_digest(work)
    c.model.nf = 48  # refused by the checkpoint's recorded config, naming the key, before any shape check
    with pytest.raises(config_checks.ConfigError, match="^model.nf: .*48"):
        train.Trainer(c, work)
    with pytest.raises(config_checks.ConfigError, match="^model.nf: .*48"):
        evaluate.evaluate(c, work)
    assert {k: v for k, v in tree_digest(work).items() if not k.startswith("eval")} == before


def test_corrupt_checkpoint_is_named(tmp_path):
    work = tmp_path / "run"
    (work / "checkpoints").mkdir(parents=True)
    (work / "checkpoints" / "checkpoint_5.pth").write_bytes(b"not a checkpoint")
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "eval", *TINY)
    assert r.returncode != 0 and "checkpoint_5.pth" in r.stderr and "Traceback" not in r.stderr


def test_validate_accepts_the_shipped_toy_config():
    config_checks.validate(shipped_config("poisson/toy2d"))


@pytest.mark.parametrize("case", ["workdir_is_a_file", "missing_config", "config_syntax_error", "bad_device",
                                  "meta_device", "wrong_data_shape", "eval_without_workdir", "pfgmpp_rho"])
def test_bad_invocations_give_one_line_errors_and_write_nothing(tmp_path, case):
    afile, work = tmp_path / "afile", tmp_path / "run"
    afile.write_text("x")
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    args = {"workdir_is_a_file": ["--config", "configs/poisson/toy2d.py", "--workdir", str(afile), "--mode", "train"],
            "missing_config": ["--config", str(tmp_path / "nope.py"), "--workdir", str(work), "--mode", "train"],
            "config_syntax_error": ["--config", str(broken), "--workdir", str(work), "--mode", "train"],
            "bad_device": ["--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train",
                           "--config.device=foo"],
            "meta_device": ["--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train",
                            "--config.device=meta"],
            "pfgmpp_rho": ["--config", "configs/pfgmpp/toy2d.py", "--workdir", str(work), "--mode", "train",
                           "--config.sampling.rho=1e-9"],
            "wrong_data_shape": ["--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train",
                                 "--config.data.shape=(3,)"],
            "eval_without_workdir": ["--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode",
                                     "eval"]}[case]
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("pfgm: error: ") and "Traceback" not in r.stderr, r.stderr
    assert not work.exists() and afile.read_text() == "x"


@pytest.mark.parametrize("step", ["missing", "a string", -3, 2.5])
def test_a_checkpoint_with_a_bad_step_is_refused_by_name(tmp_path, step):
    import torch

    from pfgm import checkpoint
    state = dict(model={"w": torch.zeros(1)})
    if step != "missing":
        state["step"] = step
    path = tmp_path / "checkpoint_5.pth"
    torch.save(state, path)
    with pytest.raises(checkpoint.CheckpointError, match="'step' must be a non-negative integer"):
        checkpoint.read_checkpoint(str(path))


@pytest.mark.parametrize("folder", ["../outside", "/tmp/abs", "a/../../x", "", ".", "a/.."])
def test_eval_folder_must_stay_inside_the_workdir(tmp_path, folder):
    work = tmp_path / "run"
    work.mkdir()
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "eval", "--eval_folder", folder)
    assert r.returncode == 2 and "--eval_folder" in r.stderr, r.stderr


@pytest.mark.parametrize("argv,mode", [(["--eval_folder", "train", "--mode", "eval"], "eval"),
                                       (["--workdir", "train", "--mode=eval"], "eval"),
                                       (["--workdir=train", "-mode", "eval"], "eval"),
                                       (["--mode", "train", "--eval_folder", "x"], "train"),
                                       (["--mode=eval", "--mode=train"], "train"),
                                       (["--config", "train"], None)])
def test_the_start_up_signal_handler_follows_the_parsed_mode(monkeypatch, argv, mode):
    """Issue 18 case 11: any argv word equal to `train` (--eval_folder train) used to make an evaluation
    ignore SIGTERM / Ctrl-C; the handler is now chosen by the --mode flag itself."""
    import signal

    from pfgm import main, stop
    installed = []
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.append((sig, handler)))
    monkeypatch.setattr(sys, "argv", ["pfgm", *argv])
    assert main.mode_flag(sys.argv) == mode
    main._note_stop_signals_during_start_up()
    assert bool(installed) == (mode == "train")
    assert all(h is stop.request for _, h in installed)


def test_a_second_signal_during_start_up_ends_it(tmp_path):
    """Issue 18 case 10: a start-up that does not end (it used to hang on a symlink loop) ignored SIGTERM
    and Ctrl-C for good. The first signal is noted (the run saves and exits 0 at its first step); a
    second one ends the process at once."""
    import signal
    import time
    script = ("import sys, time\nsys.argv = ['pfgm', '--mode', 'train']\nfrom pfgm import main\n"
              "main._note_stop_signals_during_start_up()\nprint('ready', flush=True)\ntime.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert p.poll() is None  # noted, not fatal: the run would save at its first step
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == -signal.SIGTERM and time.time() - t0 < 10


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied", "W/checkpoints/checkpoint_5.pth"),
                                   OSError(28, "No space left on device", "W/eval/ckpt_5/samples.npz"),
                                   OSError(36, "File name too long", "W" * 300)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_write_errors_are_one_line_errors(monkeypatch, capsys, tmp_path, error, mode):
    """EACCES, a full disk or a name too long, in training or evaluation: `pfgm: error: <path>: ...`
    (exit 2), not a traceback."""
    from pfgm import main as cli

    def fail(*a, **k):
        raise error

    monkeypatch.setattr(train, "train", fail)
    monkeypatch.setattr(evaluate, "evaluate", fail)
    (tmp_path / "run").mkdir()
    cli.parse_flags(["pfgm", "--config", os.path.join(ROOT, "configs", "poisson", "toy2d.py"),
                     "--workdir", str(tmp_path / "run"), "--mode", mode])
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main([])
    finally:
        cli.FLAGS.unparse_flags()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"pfgm: error: {error.filename}: {error.strerror}"), err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    ([], "give --data_norm and --data_dim, or --config"),
    (["--data_norm", "1e300", "--data_dim", "10"], "data_norm 1e+300 is too large"),
    (["--config", "configs/poisson/cifar10_ddpmpp.py", "--config.data.root=/nonexistent/cifar"], "--config: data.root")])
def test_the_hyperparameters_tool_fails_in_one_line(args, message):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "tools/hyperparameters.py", *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith(f"hyperparameters.py: error: {message}"), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
