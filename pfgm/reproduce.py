"""The paper's sample-quality/speed tables, one call per table, resumable; tools/reproduce.py is its CLI.

Tables (`TABLES`), each at two scales:

  table        gpu scale (the paper's setting)                      cpu scale (runs here)
  cifar10      CIFAR-10 FID/IS/NFE: PFGM and the VE/VP/sub-VP SDEs   8x8 digits: PFGM vs VP vs VE, RK45
  euler        Euler steps 10/20/50/100: PFGM vs VP ODE (CIFAR-10)   digits, Euler and Heun (PFGM, VP, VE)
  pc           -                                                     digits: PFGM's ODE vs the PC samplers
  weak         weaker network (DDPM instead of DDPM++): PFGM vs VP   nf 16 instead of 32: PFGM vs VP
  convergence  -                                                     digits-FID at every snapshot of each model
  celeba64     PFGM DDPM++ on CelebA 64                              (no CPU analogue)
  bedroom      PFGM DDPM++ on LSUN bedroom 256                       (no CPU analogue)
  toy          -                                                     2-D checkerboard: RK45, Euler, Heun, PC

Workdir layout:
  DIR/<model>/checkpoints/checkpoint_<step>.pth   the network a row needs (several rows share one model:
                                                  the RK45 and Euler rows of PFGM DDPM++ use the same one)
  DIR/<model>/reproduce/<sampler>.json, .npz      cached result (NFE, metrics) and samples of one
                                                  (checkpoint, sampler, n) -- a second run reuses them
  DIR/<table>_<scale>.md / .csv / .tex            the table, ours beside the paper's
  DIR/<table>_<scale>_quality_vs_nfe.png          quality vs NFE (tables with several samplers)

A row whose checkpoint is missing is listed with the command that trains it and where a published
checkpoint goes; at the cpu scale missing models are trained (all with the same n_iters). GPU rows
compute FID/IS with pfgm.evaluation (Inception weights + a statistics file); if either is missing the
row keeps its samples and NFE and says what is missing, and a later run with the file adds the FID.

Paper numbers: only those in the project's verified reference (README checkpoint table of the
official repository and score_sde's README); the rest are marked "not transcribed", never guessed.
"""
import csv
import dataclasses
import json
import os
import shlex
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the config files import `configs.default_*`
    sys.path.insert(0, ROOT)

NOT_TRANSCRIBED = "not transcribed"
# Part of every cache key: samples cached before PFGM's Euler/Heun stepped in z (they stepped in log z)
# are not reused.
SAMPLER_SCHEME = "pfgm-z-steps"
EULER_STEPS = (10, 20, 50, 100)
# Keys that define an equal budget for the CPU comparison; differences are printed, not hidden.
BUDGET_KEYS = ["training.n_iters", "training.small_batch_size", "model.name", "model.nf", "model.ch_mult",
               "model.num_res_blocks", "model.attn_resolutions", "model.ema_rate", "optim.lr",
               "optim.warmup", "optim.grad_clip", "data.dataset", "seed"]


@dataclasses.dataclass
class Row:
    name: str                    # row id (unique in its table)
    label: str                   # shown in the table
    model: str                   # checkpoint folder DIR/<model>
    config: str                  # config file, relative to the repository root
    overrides: dict = dataclasses.field(default_factory=dict)  # config changes that define the network/training
    sampler: dict = dataclasses.field(default_factory=dict)    # config.sampling overrides of this row
    paper: dict = None           # {'fid', 'is_', 'nfe', 'bpd'}: numbers or strings; None: nothing to compare
    source: str = ""             # where the paper number comes from / which paper row it mirrors
    published: str = ""          # where a published checkpoint for `model` comes from
    step: int = None             # evaluate checkpoint_<step>.pth instead of the run's final one (cpu)


@dataclasses.dataclass
class Table:
    name: str
    title: str
    kind: str                    # 'images' (FID), 'digits' (digits-FID), 'toy' (sliced W)
    dataset: str = ""            # FID statistics flag suffix for 'images'
    rows: list = dataclasses.field(default_factory=list)
    note: str = ""


def _sampler_label(s):
    if s.get("method") == "pc":
        return f"PC {s.get('predictor')}/{s.get('corrector')}, N={s.get('N')}"
    if s.get("ode_solver") in ("euler", "heun"):
        return f"{s['ode_solver'].capitalize()} N={s['N']}"
    return "RK45" + (f" tol {s['rtol']:g}" if "rtol" in s else "")


# ------------------------------------------------------------------------------------------------
# The tables.

_PF = "github.com/Newbeeer/Poisson_flow README (checkpoint table); put it in DIR/{model}/checkpoints/"
_SDE = "github.com/yang-song/score_sde_pytorch README (checkpoint table); put it in DIR/{model}/checkpoints/"
_DDPM_ARCH = {"model.resblock_type": "ddpm", "model.num_res_blocks": 2, "model.skip_rescale": False,
              "model.embedding_type": "positional"}
_RK45 = dict(method="ode", ode_solver="rk45")


def _gpu_tables():
    P, V = "configs/poisson/cifar10_ddpmpp.py", "configs/vp/cifar10_ddpmpp_continuous.py"
    pc = lambda pred, corr: dict(method="pc", predictor=pred, corrector=corr, N=1000)  # noqa: E731
    cifar = [
        Row("pfgm_ddpmpp", "PFGM, DDPM++", "pfgm_ddpmpp", P, sampler=_RK45,
            paper=dict(fid=2.48, is_=9.65, nfe="~104", bpd=NOT_TRANSCRIBED), source="PF:README", published=_PF),
        Row("pfgm_ddpmpp_deep", "PFGM, DDPM++ deep", "pfgm_ddpmpp_deep", "configs/poisson/cifar10_ddpmpp_deep.py",
            sampler=_RK45, paper=dict(fid=2.35, is_=9.68, nfe="~110", bpd=NOT_TRANSCRIBED),
            source="PF:README; abstract", published=_PF),
        Row("ve_ncsnpp_pc", "VE-SDE, NCSN++ cont. (PC)", "ve_ncsnpp_cont", "configs/ve/cifar10_ncsnpp_continuous.py",
            sampler=pc("reverse_diffusion", "langevin"), paper=dict(fid=2.38, is_=9.83, nfe="2000*"),
            source="SDE:README (*sampler default, not from the PFGM table)", published=_SDE),
        Row("vp_ddpmpp_sde", "VP-SDE, DDPM++ cont. (SDE)", "vp_ddpmpp_cont", V,
            sampler=pc("euler_maruyama", "none"), paper=dict(fid=2.55, is_=9.58, nfe="1000*", bpd=3.16),
            source="SDE:README (*sampler default)", published=_SDE),
        Row("vp_ddpmpp_ode", "VP, DDPM++ cont. (prob. flow ODE)", "vp_ddpmpp_cont", V, sampler=_RK45,
            paper=dict(fid=3.93, is_="–", nfe="140†", bpd=3.16), source="SDE:README (FID, bpd); †NFE unverified",
            published=_SDE),
        Row("subvp_ddpmpp_sde", "sub-VP SDE, DDPM++ cont. (SDE)", "subvp_ddpmpp_cont",
            "configs/subvp/cifar10_ddpmpp_continuous.py", sampler=pc("euler_maruyama", "none"),
            paper=dict(fid=2.61, is_=9.56, nfe="1000*", bpd=3.02), source="SDE:README (*sampler default)",
            published=_SDE),
        Row("subvp_ddpmpp_ode", "sub-VP, DDPM++ cont. (prob. flow ODE)", "subvp_ddpmpp_cont",
            "configs/subvp/cifar10_ddpmpp_continuous.py", sampler=_RK45,
            paper=dict(fid=3.16, is_="–", nfe="146†", bpd=3.02), source="SDE:README (FID, bpd); †NFE unverified",
            published=_SDE),
    ]
    nt = dict(fid=NOT_TRANSCRIBED, is_=NOT_TRANSCRIBED, nfe=NOT_TRANSCRIBED)
    euler = []
    for n in EULER_STEPS:
        euler.append(Row(f"pfgm_euler{n}", f"PFGM, DDPM++, Euler {n}", "pfgm_ddpmpp", P,
                         sampler=dict(method="ode", ode_solver="euler", N=n), paper=dict(nt, nfe=n),
                         source="PF:run.sh protocol; curve not transcribed", published=_PF))
    for n in EULER_STEPS:
        euler.append(Row(f"vp_ode_euler{n}", f"VP ODE, DDPM++ cont., Euler {n}", "vp_ddpmpp_cont", V,
                         sampler=dict(method="ode", ode_solver="euler", N=n), paper=dict(nt, nfe=n + 1),
                         source="curve not transcribed", published=_SDE))
    weak = [
        Row("pfgm_ddpmpp", "PFGM, DDPM++", "pfgm_ddpmpp", P, sampler=_RK45,
            paper=dict(fid=2.48, is_=9.65, nfe="~104"), source="PF:README", published=_PF),
        Row("pfgm_ddpm", "PFGM, DDPM (weaker)", "pfgm_ddpm", P, overrides=_DDPM_ARCH, sampler=_RK45, paper=nt,
            source="no published PFGM DDPM config; arch = ncsnpp with DDPM res blocks"),
        Row("vp_ddpmpp_ode", "VP ODE, DDPM++", "vp_ddpmpp_cont", V, sampler=_RK45,
            paper=dict(fid=3.93, is_="–", nfe="140†", bpd=3.16), source="SDE:README", published=_SDE),
        Row("vp_ddpm_ode", "VP ODE, DDPM (weaker)", "vp_ddpm_cont", V, overrides=_DDPM_ARCH, sampler=_RK45,
            paper=nt, source="not transcribed"),
    ]
    celeba = [Row("pfgm_celeba64", "PFGM, DDPM++, CelebA 64", "pfgm_celeba64", "configs/poisson/celeba64_ddpmpp.py",
                  sampler=_RK45, paper=dict(fid=3.68, is_="–", nfe="~110"), source="PF:README", published=_PF)]
    bedroom = [Row("pfgm_bedroom", "PFGM, DDPM++, LSUN bedroom 256", "pfgm_bedroom", "configs/poisson/bedroom_ddpmpp.py",
                   sampler=_RK45, paper=dict(fid=13.66, is_="–", nfe="~122"), source="PF:README", published=_PF)]
    return {
        "cifar10": Table("cifar10", "CIFAR-10: FID / IS / NFE, PFGM and the SDE baselines", "images", "cifar10",
                         cifar, "Baseline rows are from score_sde's README: check them against the PFGM PDF."),
        "euler": Table("euler", "CIFAR-10: robustness to the Euler step count", "images", "cifar10", euler),
        "weak": Table("weak", "CIFAR-10: robustness to a weaker network (DDPM vs DDPM++)", "images", "cifar10", weak),
        "celeba64": Table("celeba64", "CelebA 64", "images", "celeba64", celeba,
                          "Baseline rows of the paper's CelebA table are not transcribed."),
        "bedroom": Table("bedroom", "LSUN bedroom 256", "images", "bedroom", bedroom,
                         "The original code uses TF-Hub Inception-v3 feature_vector features at 256 px; "
                         "pool3 FID here is not the same number."),
    }


PC_STEPS = (100, 1000)
CONVERGENCE_STEPS = (1000, 2000, 3000, 4000, 5000, 6000)


def _cpu_pc_samplers(m):
    """The predictor-corrector samplers the paper compares PFGM against, per baseline."""
    if m == "ve":
        return [dict(method="pc", predictor="reverse_diffusion", corrector="langevin", N=n) for n in PC_STEPS]
    # VP: Euler-Maruyama, the sampler of score_sde's VP rows (reverse diffusion is the same family; at
    # 1000 steps on this CPU each extra row costs ~10 minutes)
    return [dict(method="pc", predictor="euler_maruyama", corrector="none", N=n) for n in PC_STEPS]


def _cpu_tables(rk45_tol, n_iters=None):
    D = {"pfgm": "configs/poisson/digits_ddpmpp.py", "vp": "configs/vp/digits_ddpmpp.py",
         "ve": "configs/ve/digits_ncsnpp.py"}
    rk = dict(method="ode", ode_solver="rk45", rtol=rk45_tol, atol=rk45_tol)
    names = {"pfgm": "PFGM", "vp": "VP ODE", "ve": "VE ODE"}
    paper_rk = {"pfgm": (dict(fid=2.48, is_=9.65, nfe="~104"), "CIFAR-10 PFGM DDPM++ (PF:README)"),
                "vp": (dict(fid=3.93, is_="–", nfe="140†"), "CIFAR-10 VP ODE (SDE:README)"),
                "ve": (dict(fid="–", is_="–", nfe="–"), "paper's VE row is PC (2.38, 2000 NFE); no ODE number")}
    main = [Row(f"{m}_rk45", f"{names[m]}, small UNet nf 32", f"digits_{m}", D[m], sampler=rk,
                paper=paper_rk[m][0], source=paper_rk[m][1]) for m in ("pfgm", "vp", "ve")]
    nt = dict(fid=NOT_TRANSCRIBED, is_="–", nfe=NOT_TRANSCRIBED)
    euler = []
    for m in ("pfgm", "vp", "ve"):
        euler.append(dataclasses.replace(main[["pfgm", "vp", "ve"].index(m)]))
        for solver in ("euler", "heun"):
            for n in EULER_STEPS:
                nfe = (n if solver == "euler" else 2 * n - 1) if m == "pfgm" else (n + 1 if solver == "euler"
                                                                                  else 2 * n + 1)
                euler.append(Row(f"{m}_{solver}{n}", f"{names[m]}, {solver.capitalize()} {n}", f"digits_{m}", D[m],
                                 sampler=dict(method="ode", ode_solver=solver, N=n),
                                 paper=dict(nt, nfe=nfe), source="paper's Euler curve (CIFAR-10) not transcribed"))
    pc = [dataclasses.replace(main[0])]
    pc += [Row(f"pfgm_euler{n}", f"PFGM, Euler {n}", "digits_pfgm", D["pfgm"],
               sampler=dict(method="ode", ode_solver="euler", N=n), paper=nt, source="PFGM's ODE at few steps")
           for n in (10, 20)]
    paper_pc = {("ve", 1000): (dict(fid=2.38, is_=9.83, nfe=2000), "CIFAR-10 VE NCSN++ PC (SDE:README)"),
                ("vp", 1000): (dict(fid=2.55, is_=9.58, nfe=1000), "CIFAR-10 VP DDPM++ SDE (SDE:README)")}
    for m in ("vp", "ve"):
        for smp in _cpu_pc_samplers(m):
            p, src = paper_pc.get((m, smp["N"]), (nt, "not transcribed"))
            pc.append(Row(f"{m}_pc_{smp['predictor']}_{smp['corrector']}_{smp['N']}",
                          f"{names[m].split()[0]} SDE, PC {smp['predictor']} + {smp['corrector']}, {smp['N']} steps",
                          f"digits_{m}", D[m], sampler=smp, paper=p, source=src))
    weak = [main[0],
            Row("pfgm_nf16_rk45", "PFGM, weaker UNet nf 16", "digits_pfgm_nf16", D["pfgm"], {"model.nf": 16}, rk,
                dict(fid=NOT_TRANSCRIBED, is_="–", nfe=NOT_TRANSCRIBED), "paper: DDPM vs DDPM++, not transcribed"),
            main[1],
            Row("vp_nf16_rk45", "VP ODE, weaker UNet nf 16", "digits_vp_nf16", D["vp"], {"model.nf": 16}, rk,
                dict(fid=NOT_TRANSCRIBED, is_="–", nfe=NOT_TRANSCRIBED), "paper: DDPM vs DDPM++, not transcribed")]
    convergence = []
    last = n_iters or CONVERGENCE_STEPS[-1]
    for model, cfg, over, label in (("digits_pfgm", D["pfgm"], {}, "PFGM"), ("digits_vp", D["vp"], {}, "VP ODE"),
                                    ("digits_ve", D["ve"], {}, "VE ODE"),
                                    ("digits_pfgm_nf16", D["pfgm"], {"model.nf": 16}, "PFGM nf 16"),
                                    ("digits_vp_nf16", D["vp"], {"model.nf": 16}, "VP ODE nf 16")):
        for step in [k for k in CONVERGENCE_STEPS if k <= last]:
            convergence.append(Row(f"{model}_step{step}", f"{label}, step {step}", model, cfg, over, rk,
                                   paper=None, source="convergence check", step=step))
    T = {"pfgm": "configs/poisson/toy2d.py", "ve": "configs/ve/toy2d.py", "vp": "configs/vp/toy2d.py"}
    toy = []
    for m in ("pfgm", "ve", "vp"):
        samplers = [rk] + [dict(method="ode", ode_solver=solver, N=n) for solver in ("euler", "heun")
                           for n in EULER_STEPS]
        if m != "pfgm":
            samplers += _cpu_pc_samplers(m)
        for smp in samplers:
            tag = "rk45" if smp.get("ode_solver") == "rk45" and smp["method"] == "ode" else _sampler_tag(smp, 0)[:-3]
            toy.append(Row(f"{m}_{tag}", f"{names[m] if smp['method'] == 'ode' else names[m].split()[0] + ' SDE'}, "
                           f"MLP, {_sampler_label(smp)}", f"toy_{m}", T[m], sampler=smp, paper=None,
                           source="no paper analogue (toy)"))
    return {
        "cifar10": Table("cifar10", "Digits 8x8 (CPU analogue of the CIFAR-10 table): digits-FID / NFE, RK45",
                         "digits", rows=main),
        "euler": Table("euler", "Digits 8x8: robustness to the step count (Euler and Heun)", "digits", rows=euler),
        "pc": Table("pc", "Digits 8x8: PFGM's ODE against the predictor-corrector samplers", "digits", rows=pc),
        "weak": Table("weak", "Digits 8x8: robustness to a weaker network (nf 16 vs 32)", "digits", rows=weak),
        "convergence": Table("convergence", "Digits 8x8: digits-FID (RK45) of every model along its training",
                             "digits", rows=convergence),
        "toy": Table("toy", "2-D checkerboard: sliced Wasserstein / MMD / NFE", "toy", rows=toy),
    }


def tables(scale, rk45_tol=1e-3, n_iters=None):
    return _gpu_tables() if scale == "gpu" else _cpu_tables(rk45_tol, n_iters)


def table_names(scale):
    return list(tables(scale))


# ------------------------------------------------------------------------------------------------
# Configs, checkpoints, commands.

def load_config(path):
    """A row's config; relative paths are relative to the repository root."""
    from pfgm.run_utils import load_config_file
    return load_config_file(path if os.path.isabs(path) else os.path.join(ROOT, path))


def _write_json(path, obj):
    """Write a cache record atomically (temporary file, then rename): a killed run leaves no half file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _set(config, key, value):
    *parents, last = key.split(".")
    node = config
    for p in parents:
        node = node[p]
    with node.unlocked() if hasattr(node, "unlocked") else _null():
        node[last] = value


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _get(config, key):
    for part in key.split("."):
        config = config[part]
    return config


def _fmt_flag(value):
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def training_overrides(row, opts):
    """Config changes of the trained model: the row's own, plus (cpu) the common step budget."""
    o = dict(row.overrides)
    if opts.get("n_iters") and opts["scale"] == "cpu":
        n = int(opts["toy_n_iters"] if row.model.startswith("toy_") and opts.get("toy_n_iters") else opts["n_iters"])
        every = int(opts.get("snapshot_every") or n)  # the convergence table reads every snapshot
        o.update({"training.n_iters": n, "training.snapshot_freq": min(every, n),
                  "training.snapshot_freq_for_preemption": max(1, min(500, n))})
    elif opts.get("toy_n_iters") and row.model.startswith("toy_"):
        n = int(opts["toy_n_iters"])
        o.update({"training.n_iters": n, "training.snapshot_freq": n})
    if opts["scale"] == "cpu":
        o["training.snapshot_sampling"] = False  # the study samples the final checkpoint itself
    return o


def build_config(row, opts):
    config = load_config(row.config)
    for k, v in training_overrides(row, opts).items():
        _set(config, k, v)
    if opts.get("device"):
        _set(config, "device", opts["device"])
    return config


def train_command(row, opts):
    flags = " ".join(f"--config.{k}={shlex.quote(_fmt_flag(v))}" for k, v in training_overrides(row, opts).items())
    wd = os.path.join(opts["workdir"], row.model)
    return (f"python -m pfgm.main --config {row.config} --workdir {shlex.quote(wd)} --mode train"
            + (" " + flags if flags else ""))


def find_checkpoint(config, model_dir, scale, step=None):
    """(step, path) to evaluate, or None: checkpoint_<step>, else the run's final checkpoint (cpu), else the
    newest one."""
    from pfgm import checkpoint
    if scale == "cpu" or step is not None:
        step = config.training.n_iters if step is None else step
        path = checkpoint.checkpoint_path(model_dir, step)
        return (step, path) if os.path.exists(path) else None
    found = checkpoint.list_checkpoints(model_dir)
    return found[-1] if found else None


# ------------------------------------------------------------------------------------------------
# Metrics.

def _digits_metric():
    """digits_fid from pfgm.evaluation.digits; a raw-pixel Fréchet distance stand-in when absent."""
    try:
        from pfgm.evaluation.digits import digits_fid
        return "digits-FID", digits_fid
    except ImportError:
        return "pixel-FD (stand-in: digits.py missing)", pixel_fd


def pixel_fd(samples, reference):
    """Fréchet distance of raw pixels (a stand-in for digits_fid in tests)."""
    from pfgm.evaluation import fid
    a = np.asarray(samples, np.float64).reshape(len(samples), -1)
    b = np.asarray(reference, np.float64).reshape(len(reference), -1)
    return fid.frechet_distance(*fid.activation_statistics(a), *fid.activation_statistics(b))


class _Context:
    """Per-run shared state: datasets, reference sets, metric objects (built once)."""

    def __init__(self, opts, digits_metric=None):
        self.opts = opts
        self._cache = {}
        self.digits_metric = digits_metric or _digits_metric()

    def digits_reference(self, config):
        if "digits" not in self._cache:
            from pfgm import datasets
            ds = datasets.get_dataset(config)
            self._cache["digits"] = ds.train.load(torch.arange(ds.num_train)).numpy()
        return self._cache["digits"]

    def inception(self, dataset, device):
        """(InceptionMetrics, None) or (None, what is missing)."""
        key = ("inception", dataset)
        if key not in self._cache:
            stats = self.opts.get(f"fid_stats_{dataset}") or ""
            if not stats:
                self._cache[key] = (None, f"FID stats not given (--fid_stats_{dataset}=PATH; make it with "
                                          "`python tools/fid.py stats DATA -o stats.npz`)")
            elif not os.path.isfile(stats):
                self._cache[key] = (None, f"FID stats file not found: {stats}")
            else:
                try:
                    from pfgm.evaluation.image_metrics import InceptionMetrics
                    self._cache[key] = (InceptionMetrics(stats, self.opts.get("inception_weights") or None,
                                                         device), None)
                except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
                    self._cache[key] = (None, f"Inception weights: {e} (--inception_weights=PATH or "
                                              "$PFGM_INCEPTION_WEIGHTS)")
        return self._cache[key]


# ------------------------------------------------------------------------------------------------
# One row.

def _sampler_tag(sampler, n):
    s = sampler
    if s.get("method") == "pc":
        tag = f"pc_{s['predictor']}_{s['corrector']}_N{s['N']}"
    elif s.get("ode_solver") in ("euler", "heun"):
        tag = f"{s['ode_solver']}_N{s['N']}"
    else:
        tag = "rk45" + (f"_tol{s['rtol']:g}" if "rtol" in s else "")
    return f"{tag}_n{n}"


def _num_samples(row, opts):
    """Samples of a row: --num_samples, or --toy_num_samples for the toy models (MMD needs thousands)."""
    if row.model.startswith("toy_") and opts.get("toy_num_samples"):
        return int(opts["toy_num_samples"])
    return opts["num_samples"]


def _load_model(config, ckpt_path):
    """(the checkpoint's EMA network in eval mode, its device)."""
    from pfgm import checkpoint, run_utils, train
    from pfgm.models.ema import ExponentialMovingAverage
    device = run_utils.resolve_device(config.device)
    model = train.build_model(config, device)
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    checkpoint.load_checkpoint(ckpt_path, model, ema, map_location=device)
    ema.copy_to(model)
    model.eval()
    return model, device


def _sample(config, ckpt_path, row, opts, log):
    from pfgm import datasets, methods
    model, device = _load_model(config, ckpt_path)
    dataset = datasets.get_dataset(config)
    inverse = datasets.inverse_scaler(config)
    method = methods.get_method(config)
    n = _num_samples(row, opts)
    bs = opts.get("batch_size") or n
    sampler = {k: v for k, v in row.sampler.items() if not (k == "method" and k not in config.sampling)}
    gen = torch.Generator(device=device).manual_seed(config.seed)
    parts, nfes = [], []
    while sum(len(p) for p in parts) < n:
        k = min(bs, n - sum(len(p) for p in parts))
        with torch.no_grad():
            x, nfe = method.sample(model, k, dataset.shape, generator=gen, device=device, **sampler)
        parts.append(inverse(x).float().cpu().numpy())
        nfes.append(nfe)
        log(f"  [{row.model} {_sampler_label(row.sampler)}] {sum(len(p) for p in parts)}/{n} samples, NFE {nfe}")
    return np.concatenate(parts), float(np.mean(nfes)), dataset


def _metrics(table, config, samples, dataset, ctx):
    """{'metrics': {...}} or {'missing': why} for the table's kind."""
    finite = np.isfinite(samples.reshape(len(samples), -1)).all(1)
    out = {"nonfinite": int((~finite).sum())}
    s = samples[finite]
    if len(s) < 2:
        return dict(out, missing="fewer than 2 finite samples")
    if table.kind == "toy":
        from pfgm.evaluate import sample_quality
        ref = dataset.eval_data(len(samples), torch.Generator().manual_seed(config.seed + 5)).numpy()
        q = sample_quality(s, ref[: len(s)])
        return dict(out, metrics=dict(sliced_w=q["sliced_wasserstein"], mmd=q["mmd"]))
    if table.kind == "digits":
        name, fn = ctx.digits_metric
        return dict(out, metrics={"fid": float(fn(np.clip(s, 0.0, 1.0), ctx.digits_reference(config)))},
                    metric_name=name)
    from pfgm import run_utils
    metric, why = ctx.inception(table.dataset, run_utils.resolve_device(config.device))
    if metric is None:
        return dict(out, missing=why)
    m = metric(s)
    return dict(out, metrics={"fid": m["fid"], "is_": m.get("inception_score")})


class _PrintLog:
    """A logger-like `info(fmt, *args)` over reproduce's `log(message)`."""

    def __init__(self, log):
        self.log = log

    def info(self, fmt, *args):
        self.log("  " + (fmt % args if args else fmt))


def _likelihood(config, ckpt_path, model_dir, opts, log):
    """Bits/dim of the test split under the model's probability-flow ODE (pfgm.evaluate.likelihood_report),
    cached per checkpoint and settings in DIR/<model>/reproduce/; rows sharing a model share it."""
    from pfgm import datasets, evaluate, methods
    n, repeats, tol = opts["bpd_num_samples"], opts["bpd_repeats"], opts["bpd_tol"]
    key = dict(checkpoint=os.path.abspath(ckpt_path), mtime=os.path.getmtime(ckpt_path), num_samples=n,
               repeats=repeats, tol=tol, batch_size=opts.get("batch_size"))  # RK45 steps the batch as one system
    folder = os.path.join(model_dir, "reproduce")
    cache = os.path.join(folder, f"bpd_test_n{n}_r{repeats}_tol{tol:g}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("key") == json.loads(json.dumps(key)):
            return cached["report"]
    for k, v in dict(enable_bpd=True, bpd_dataset="test", bpd_num_samples=n, bpd_num_repeats=repeats,
                     bpd_solver="rk45", bpd_rtol=tol, bpd_atol=tol).items():
        _set(config, f"eval.{k}", v)
    if opts.get("batch_size"):
        _set(config, "eval.bpd_batch_size", opts["batch_size"])
    model, device = _load_model(config, ckpt_path)
    os.makedirs(folder, exist_ok=True)
    log(f"[{os.path.basename(model_dir)}] bits/dim of {n or 'all'} test images, {repeats} pass(es)")
    report = evaluate.likelihood_report(config, methods.get_method(config), model, datasets.get_dataset(config),
                                        device, folder, _PrintLog(log))
    _write_json(cache, dict(key=key, report=report))
    return report


def evaluate_row(table, row, ctx, log):
    """The cached or freshly computed result of one row (a dict; 'status' says what happened), with its
    model's bits/dim when asked (opts['bpd'], image tables)."""
    result = _sample_row(table, row, ctx, log)
    opts = ctx.opts
    if not opts.get("bpd") or table.kind == "toy" or "checkpoint" not in result:
        return result
    try:
        report = _likelihood(build_config(row, opts), result["checkpoint"],
                             os.path.join(opts["workdir"], row.model), opts, log)
    except Exception as e:  # a failed likelihood is a result; keep the rest of the row
        return dict(result, bpd_note=f"bpd failed: {type(e).__name__}: {e}")
    return dict(result, bpd=report["bpd"], bpd_stderr=report["bpd_stderr"], bpd_nfe=report["bpd_nfe"])


def _sample_row(table, row, ctx, log):
    opts = ctx.opts
    model_dir = os.path.join(opts["workdir"], row.model)
    result = dict(row=row.name, label=row.label, model=row.model, config=row.config, overrides=row.overrides,
                  sampler=_sampler_label(row.sampler), train_command=train_command(row, opts),
                  published=row.published.format(model=row.model) if row.published else "")
    try:
        config = build_config(row, opts)
    except Exception as e:  # a config that cannot be built is a row result, not a crash
        return dict(result, status="error", note=f"config: {type(e).__name__}: {e}")
    ck = find_checkpoint(config, model_dir, opts["scale"], row.step)
    if ck is None and opts.get("train") and (row.step is None or row.step <= config.training.n_iters):
        from pfgm.train import train
        log(f"[{row.model}] training ({config.training.n_iters} steps) in {model_dir}")
        t0 = time.time()
        train(config, model_dir)
        with open(os.path.join(model_dir, "reproduce_train_time.json"), "w") as f:
            json.dump({"seconds": time.time() - t0, "n_iters": config.training.n_iters}, f)
        ck = find_checkpoint(config, model_dir, opts["scale"], row.step)
    if ck is None:
        where = (f"no checkpoint in {os.path.join(model_dir, 'checkpoints')}"
                 + (f" (expected checkpoint_{config.training.n_iters}.pth)" if opts["scale"] == "cpu" else ""))
        return dict(result, status="missing checkpoint", note=where)
    step, path = ck
    n = _num_samples(row, opts)
    cache_dir = os.path.join(model_dir, "reproduce")
    tag = f"{_sampler_tag(row.sampler, n)}_step{step}"
    key = dict(checkpoint=os.path.abspath(path), step=step, mtime=os.path.getmtime(path), sampler=row.sampler,
               num_samples=n, kind=table.kind, scheme=SAMPLER_SCHEME)
    cache_json, cache_npz = os.path.join(cache_dir, tag + ".json"), os.path.join(cache_dir, tag + ".npz")
    cached = None
    if os.path.exists(cache_json):
        with open(cache_json) as f:
            cached = json.load(f)
        if cached.get("key") != json.loads(json.dumps(key)):
            cached = None
    result.update(step=step, checkpoint=path, num_samples=n, samples_path=cache_npz)
    if cached is not None and table.kind == "digits" and cached.get("metric_name") != ctx.digits_metric[0]:
        cached.pop("metrics", None)  # computed with another feature metric (e.g. the stand-in): redo it
    if cached is not None and "metrics" in cached:
        log(f"[{row.name}] cached: {cache_json}")
        return dict(result, **{k: cached[k] for k in ("nfe", "metrics", "nonfinite", "sample_s", "metric_name")
                               if k in cached}, status="cached")
    if cached is not None and os.path.exists(cache_npz):
        samples, nfe, sample_s = np.load(cache_npz)["samples"], cached["nfe"], cached.get("sample_s")
        from pfgm import datasets
        dataset = datasets.get_dataset(config)
        status = "metrics added to cached samples"
    else:
        t0 = time.time()
        try:
            samples, nfe, dataset = _sample(config, path, row, opts, log)
        except Exception as e:  # a failed solver is a result; keep the other rows
            return dict(result, status="error", note=f"sampling failed: {type(e).__name__}: {e}")
        sample_s = time.time() - t0
        os.makedirs(cache_dir, exist_ok=True)
        np.savez(cache_npz, samples=samples.astype(np.float16 if table.kind == "images" else np.float32), nfe=nfe)
        status = "computed"
    m = _metrics(table, config, samples, dataset, ctx)
    record = dict(key=key, nfe=nfe, sample_s=sample_s, **m)
    os.makedirs(cache_dir, exist_ok=True)
    _write_json(cache_json, record)
    log(f"[{row.name}] {status}: NFE {nfe:.1f}"
        + "".join(f", {k} {v:.4g}" for k, v in (m.get("metrics") or {}).items() if v is not None)
        + (f"; {m['missing']}" if "missing" in m else ""))
    out = dict(result, nfe=nfe, sample_s=sample_s, status=status, nonfinite=m["nonfinite"])
    if "metrics" in m:
        out["metrics"] = m["metrics"]
        if "metric_name" in m:
            out["metric_name"] = m["metric_name"]
    else:
        out["note"] = m["missing"]
    return out


# ------------------------------------------------------------------------------------------------
# Output.

def _num(v, digits=3):
    if v is None or v == "":
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and not np.isfinite(v):
        return "nan"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _columns(table, bpd=False):
    if table.kind == "toy":
        return ["row", "sampler", "NFE", "sliced W", "MMD", "status / note"]
    cols = ["row", "sampler", "NFE", "FID"] + (["IS"] if table.kind == "images" else []) + (["bpd"] if bpd else [])
    return cols + ["paper NFE", "paper FID"] + (["paper IS"] if table.kind == "images" else []) + \
        (["paper bpd"] if bpd else []) + ["paper source", "status / note"]


def _cells(table, row, r, bpd=False):
    met = r.get("metrics") or {}
    paper = row.paper or {}
    note = r["status"]
    if r["status"] == "missing checkpoint":
        note = f"missing: {r['note']}. Train: `{r['train_command']}`" + (
            f"; or published: {r['published']}" if r.get("published") else "")
    elif r.get("note"):
        note += f": {r['note']}"
    if r.get("bpd_note"):
        note += f"; {r['bpd_note']}"
    if r.get("nonfinite"):
        note += f" ({r['nonfinite']} non-finite samples dropped)"
    nfe = _num(r.get("nfe"), 4) if r.get("nfe") is not None else ""
    if table.kind == "toy":
        return [row.label, r["sampler"], nfe, _num(met.get("sliced_w")), _num(met.get("mmd")), note]
    cells = [row.label, r["sampler"], nfe, _num(met.get("fid"))]
    if table.kind == "images":
        cells.append(_num(met.get("is_")))
    if bpd:
        cells.append(f"{r['bpd']:.3f} ± {r['bpd_stderr']:.3f}" if r.get("bpd") is not None else "")
    cells += [_num(paper.get("nfe")), _num(paper.get("fid"))]
    if table.kind == "images":
        cells.append(_num(paper.get("is_")))
    if bpd:
        cells.append(_num(paper.get("bpd", "–")))
    return cells + [row.source, note]


def budget_report(rows, opts):
    configs = {}
    for row in rows:
        if row.model not in configs and not row.model.startswith("toy_"):
            configs[row.model] = build_config(row, opts)
    if not configs:
        return []
    from pfgm import models
    lines = []
    for key in BUDGET_KEYS:
        vals = {}
        for n, c in configs.items():
            try:
                vals[n] = _get(c, key)
            except (KeyError, AttributeError):
                vals[n] = None
        same = len({repr(v) for v in vals.values()}) == 1
        lines.append(f"{key}: " + ("same, " + repr(next(iter(vals.values()))) if same else
                                   "DIFFERS, " + ", ".join(f"{n}={v!r}" for n, v in vals.items())))
    lines.append("parameters: " + ", ".join(
        f"{n}={sum(p.numel() for p in models.create_model(c, 'cpu').parameters())}" for n, c in configs.items()))
    return lines


def write_outputs(table, rows, results, opts, header):
    base = os.path.join(opts["workdir"], f"{table.name}_{opts['scale']}")
    bpd = bool(opts.get("bpd")) and table.kind != "toy"
    cols = _columns(table, bpd)
    metric_name = next((r["metric_name"] for r in results if r.get("metric_name")), None)
    if metric_name and metric_name != "digits-FID":
        cols = [c.replace("FID", metric_name) if c == "FID" else c for c in cols]
    body = [_cells(table, row, r, bpd) for row, r in zip(rows, results)]
    md = [f"### {table.title}", ""] + header + (["", table.note] if table.note else []) + [""]
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "---|" * len(cols))
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |" for cells in body]
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row_id", "model"] + cols)
        for row, cells in zip(rows, body):
            w.writerow([row.name, row.model] + cells)
    tex_cols = [c for c in cols if c not in ("status / note", "paper source")]

    def tex(s):
        s = str(s)
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("~", r"$\sim$"), ("†", r"$^\dagger$"), ("–", "--")):
            s = s.replace(a, b)
        return s
    with open(base + ".tex", "w") as f:
        f.write("% " + table.title + "\n\\begin{tabular}{" + "l" * 2 + "r" * (len(tex_cols) - 2) + "}\n\\toprule\n")
        f.write(" & ".join(tex(c) for c in tex_cols) + r" \\" + "\n\\midrule\n")
        for cells in body:
            f.write(" & ".join(tex(cells[cols.index(c)]) for c in tex_cols) + r" \\" + "\n")
        f.write("\\bottomrule\n\\end{tabular}\n")
    written = [base + ".md", base + ".csv", base + ".tex"]
    if table.name == "convergence":
        plots = [plot_convergence(table, rows, results, base + "_fid_vs_step.png", metric_name)]
    else:
        plots = [plot_quality_vs_nfe(table, rows, results, base + "_quality_vs_nfe.png", metric_name),
                 plot_quality_vs_steps(table, rows, results, base + "_quality_vs_steps.png", metric_name),
                 plot_sample_grids(table, rows, results, base + "_samples.png")]
    written += [p for p in plots if p]
    return "\n".join(md), written


def _series(sampler):
    if sampler.get("method") == "pc":
        return f"PC {sampler['predictor']}+{sampler['corrector']}"
    return {"euler": "Euler", "heun": "Heun"}.get(sampler.get("ode_solver"), "RK45")


def plot_quality_vs_nfe(table, rows, results, path, metric_name=None):
    """Quality against NFE: one colour per model, one marker/line per sampler family."""
    pts = {}
    for row, r in zip(rows, results):
        v = _quality(table, r)
        if v is None or r.get("nfe") is None or row.step is not None:
            continue
        pts.setdefault((row.model, _series(row.sampler)), []).append((r["nfe"], v))
    if len(pts) < 2 and not any(len(p) > 1 for p in pts.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for m, _ in pts))}
    styles = {"Euler": "o-", "Heun": "s--", "RK45": "*"}
    for (model, series), p in pts.items():
        p.sort()
        style = styles.get(series, "^:" if "langevin" in series else "v:" if "euler_maruyama" in series else "D:")
        ax.plot([a for a, _ in p], [b for _, b in p], style, color=colors[model], ms=12 if series == "RK45" else 5,
                label=f"{model} {series}")
    return _finish_plot(fig, ax, table, path, "NFE", _quality_name(table, metric_name), fontsize=6, ncol=2)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _quality(table, r):
    return (r.get("metrics") or {}).get("mmd" if table.kind == "toy" else "fid")


def _quality_name(table, metric_name=None):
    return "MMD" if table.kind == "toy" else metric_name or "FID"


def _finish_plot(fig, ax, table, path, xlabel, ylabel, xlog=True, **legend):
    """Axes, labels, title, grid and legend shared by the study's line plots; saves to path."""
    if xlog:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + " (lower is better)")
    ax.set_title(table.title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(**legend)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_quality_vs_steps(table, rows, results, path, metric_name=None):
    """Quality against the number of fixed steps, one line per model and solver (Euler solid, Heun
    dashed); RK45 as a horizontal line."""
    lines, rk = {}, {}
    for row, r in zip(rows, results):
        v, s = _quality(table, r), row.sampler
        if v is None:
            continue
        if s.get("method", "ode") == "ode" and s.get("ode_solver") in ("euler", "heun"):
            lines.setdefault((row.model, s["ode_solver"]), []).append((s["N"], v))
        elif s.get("ode_solver") == "rk45" and s.get("method", "ode") == "ode":
            rk[row.model] = v
    if not any(len(p) > 1 for p in lines.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for m, _ in lines))}
    for (model, solver), pts in lines.items():
        pts.sort()
        ax.plot([a for a, _ in pts], [b for _, b in pts], "o-" if solver == "euler" else "s--",
                color=colors[model], label=f"{model} {solver.capitalize()}")
    for model, v in rk.items():
        if model in colors:
            ax.axhline(v, color=colors[model], lw=0.8, alpha=0.6, ls=":", label=f"{model} RK45")
    return _finish_plot(fig, ax, table, path, "steps N", _quality_name(table, metric_name), fontsize=7)


def plot_convergence(table, rows, results, path, metric_name=None):
    """Digits-FID (RK45) against the training step, one line per model."""
    lines = {}
    for row, r in zip(rows, results):
        if _quality(table, r) is not None and row.step:
            lines.setdefault(row.model, []).append((row.step, _quality(table, r)))
    if not lines:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (model, pts) in enumerate(lines.items()):
        pts.sort()
        ax.plot([a for a, _ in pts], [b for _, b in pts], "o-", color=f"C{i}", label=model)
    return _finish_plot(fig, ax, table, path, "training step", (metric_name or "FID") + ", RK45", xlog=False,
                        fontsize=7)


def plot_sample_grids(table, rows, results, path, per_row=36):
    """One panel per row of the table: its first samples (a grid of digits, or a scatter of points)."""
    panels = [(row, r) for row, r in zip(rows, results) if r.get("samples_path") and os.path.exists(r["samples_path"])]
    if not panels or table.kind == "images":
        return None
    from pfgm import visualize
    plt = _pyplot()
    cols = min(5, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (row, r) in zip(axes.flat, panels):
        x = np.load(r["samples_path"])["samples"].astype(np.float32)
        if table.kind == "toy":
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.scatter(x[:2000, 0], x[:2000, 1], s=1, alpha=0.5, lw=0)
            ax.set_xlim(-4.5, 4.5)
            ax.set_ylim(-4.5, 4.5)
            ax.set_aspect("equal")
        else:
            ax.imshow(visualize.image_grid(visualize.to_uint8(np.clip(x[:per_row], 0, 1)), nrow=6)[..., 0],
                      cmap="gray", vmin=0, vmax=255)
        q = _quality(table, r)
        ax.set_title(f"{row.label}\n{r['sampler']}, NFE {r.get('nfe', 0):.0f}"
                     + (f", {'MMD' if table.kind == 'toy' else 'FID'} {q:.3g}" if q is not None else ""), fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# Entry point.

DEFAULTS = dict(scale="gpu", n_iters=None, toy_n_iters=None, toy_num_samples=None, snapshot_every=1000, report=None,
                num_samples=None, batch_size=None, rk45_tol=1e-3,
                train=None, device=None, inception_weights="", fid_stats_cifar10="", fid_stats_celeba64="",
                fid_stats_bedroom="", bpd=False, bpd_num_samples=0, bpd_repeats=None, bpd_tol=1e-5)


def run_table(name, workdir, log=print, digits_metric=None, command=None, **options):
    """Evaluate (what is not cached of) table `name` ('all' for every table of the scale); write
    DIR/<table>_<scale>.md/.csv/.tex (+ plot). Returns {table: (markdown, [files], results)}."""
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    opts["workdir"] = workdir
    scale = opts["scale"]
    if opts["num_samples"] is None:
        opts["num_samples"] = 50000 if scale == "gpu" else 500
    if opts["train"] is None:
        opts["train"] = scale == "cpu"
    if opts["bpd_repeats"] is None:  # the original's protocol: 5 passes over the test split
        opts["bpd_repeats"] = 5 if scale == "gpu" else 1
    all_tables = tables(scale, opts["rk45_tol"], opts.get("n_iters"))
    names = list(all_tables) if name == "all" else [name]
    for n in names:
        if n not in all_tables:
            other = tables("gpu" if scale == "cpu" else "cpu")
            hint = f" (a {('gpu' if scale == 'cpu' else 'cpu')}-scale table only)" if n in other else ""
            raise ValueError(f"unknown table {n!r} at scale {scale}{hint}; choose from {list(all_tables) + ['all']}")
    os.makedirs(workdir, exist_ok=True)
    ctx = _Context(opts, digits_metric)
    out = {}
    for n in names:
        table = all_tables[n]
        t0 = time.time()
        results = [evaluate_row(table, row, ctx, log) for row in table.rows]
        per_row = _num_samples(table.rows[0], opts) if table.rows else opts["num_samples"]
        header = [f"Command: `{command}`" if command else "",
                  f"Scale {scale}; {per_row} samples per row"
                  + (f"; RK45 rtol = atol = {opts['rk45_tol']:g}" if scale == "cpu" else "; sampler tolerances "
                     "of each config") + "; NFE = network evaluations per sample (SDE/ODE rows include the "
                  "final denoising step).",
                  f"Evaluation wall time of this run: {time.time() - t0:.0f} s (cached rows cost nothing)."]
        metric_name = next((r.get("metric_name") for r in results if r.get("metric_name")), None)
        if table.kind == "digits":
            header.append(f"FID here: {metric_name or ctx.digits_metric[0]} of {opts['num_samples']} samples "
                          "against the 1500 training digits ("
                          + ("64-d features of the shipped digits classifier" if (metric_name or
                             ctx.digits_metric[0]) == "digits-FID" else "raw 64-d pixels: a stand-in") + "); "
                          "paper columns are the CIFAR-10 numbers of the row this one mirrors, "
                          "for orientation only.")
        if scale == "cpu" and table.kind == "digits":
            header += ["", "Budget check:"] + [f"- {b}" for b in budget_report(table.rows, opts)]
            times = []
            for m in dict.fromkeys(r.model for r in table.rows):
                p = os.path.join(workdir, m, "reproduce_train_time.json")
                if os.path.exists(p):
                    with open(p) as f:
                        times.append(f"{m} {json.load(f)['seconds']:.0f} s")
            if times:
                header.append("- training wall time: " + ", ".join(times))
        if table.name == "convergence":
            header += ["", "Stopped improving? (rule: the final checkpoint's FID is within 10% or 1.0 of the best "
                       "along the run, and the last two checkpoints agree to that margin)"]
            header += [f"- {line}" for line in convergence_verdicts(table.rows, results)]
        header = [h for h in header if h is not None]
        md, files = write_outputs(table, table.rows, results, opts, [h for h in header if h != ""] and header)
        out[n] = (md, files, results)
    if name == "all":
        with open(os.path.join(workdir, f"all_{scale}.md"), "w") as f:
            f.write("\n\n".join(md for md, _, _ in out.values()) + "\n")
    if opts.get("report"):
        write_report(out, opts["report"], command)
    return out


def _close(a, b):
    return abs(a - b) <= max(0.1 * min(a, b), 1.0)


def convergence_verdicts(rows, results):
    """One line per model of the convergence table: its FID along training and whether it stopped improving."""
    runs = {}
    for row, r in zip(rows, results):
        q = (r.get("metrics") or {}).get("fid")
        if q is not None:
            runs.setdefault(row.model, []).append((row.step, q))
    lines = []
    for model, pts in runs.items():
        pts.sort()
        best_step, best = min(pts, key=lambda p: p[1])
        final = pts[-1][1]
        done = len(pts) >= 2 and _close(final, best) and _close(final, pts[-2][1])
        lines.append(f"{model}: " + ", ".join(f"{s}: {q:.3g}" for s, q in pts) + f"; best {best:.3g} at step "
                     f"{best_step}; " + ("stopped improving" if done else "NOT converged by this rule"))
    return lines


def write_report(out, path, command=None):
    """One Markdown page with every table of this run and its plots (copied beside the page as
    <page name>_<plot>.png): what docs/reproduce_cpu.md is made of."""
    import shutil
    folder, stem = os.path.dirname(os.path.abspath(path)), os.path.splitext(os.path.basename(path))[0]
    os.makedirs(folder, exist_ok=True)
    parts = [f"# {stem.replace('_', ' ')}: generated tables", "",
             f"Generated by `{command}`; do not edit by hand (rerun it: cached rows cost nothing)." if command
             else "Generated by pfgm.reproduce."]
    for name, (md, files, _) in out.items():
        parts += ["", md.rstrip()]
        for f in files:
            if f.endswith(".png"):
                target = f"{stem}_{os.path.basename(f)}"
                shutil.copyfile(f, os.path.join(folder, target))
                parts += ["", f"![{os.path.basename(f)[:-4]}]({target})"]
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    return path
