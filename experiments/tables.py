"""The tables of the study: their rows (model, config, sampler settings) and the paper's numbers.

Pure data, no torch: `tables(scale)` -> {name: Table}. A Row names a network (DIR/<model>, its config
file and overrides), a sampler (config.sampling overrides) and the paper number it sits beside;
`sampler_label` / `sampler_tag` name a sampler in the tables and in row ids / cache file names.

  table        gpu scale (the paper's setting)                      cpu scale (runs here)
  cifar10      CIFAR-10 FID/IS/NFE: PFGM and the VE/VP/sub-VP SDEs   8x8 digits: PFGM vs VP vs VE, RK45
  euler        Euler steps 10/20/50/100: PFGM vs VP ODE (CIFAR-10)   digits, Euler and Heun (PFGM, VP, VE)
  pc           -                                                     digits: PFGM's ODE vs the PC samplers
  weak         weaker network (DDPM instead of DDPM++): PFGM vs VP   nf 16 instead of 32: PFGM vs VP
  convergence  -                                                     digits-FID at every snapshot of each model
  celeba64     PFGM DDPM++ on CelebA 64                              (no CPU analogue)
  bedroom      PFGM DDPM++ on LSUN bedroom 256                       (no CPU analogue)
  toy          -                                                     2-D checkerboard: RK45, Euler, Heun, PC
  pfgmpp       CIFAR-10 SongUNet NCSN++, the README's rows (D = 128,   digits: PFGM++ for D = 1 ... inf, Heun at
               2048, 2048 cond., EDM): min FID of 3 seed sets       35/13/9/5 NFE, weights quantized to 6/5 bits
  pfgmpp_ffhq64  FFHQ 64 SongUNet DDPM++: D = 128 and EDM            -
  pfgmpp_toy   -                                                     2-D checkerboard: PFGM++ for D = 1 ... inf
  pfgmpp_convergence -                                               digits-FID of each PFGM++ model per snapshot
  pfgmpp_songunet -                                                  digits: PFGM++ with NCSN++ vs SongUNet (equal
                                                                    parameters), with / without augmentation
  pfgmpp_songunet_convergence -                                      the same models per snapshot
  conditional, conditional_convergence, conditional_toy  -           class-conditional study (experiments/cond_tables.py)

Several rows share one model (the RK45 and Euler rows of PFGM DDPM++ use the same network).

Paper numbers: only those in the project's verified reference (README checkpoint table of the
official repository and score_sde's README); the rest are marked "not transcribed", never guessed.
"""
import dataclasses
import math

NOT_TRANSCRIBED = "not transcribed"
EULER_STEPS = (10, 20, 50, 100)


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
    quantize_bits: int = None    # sample with every weight tensor rounded to 2^bits levels (robustness)
    seed_sets: tuple = ()        # first seeds of per-image seed sets: one sample set each, the row reports the
                                 # minimum FID over them (the PFGM++ / EDM protocol); () = one random stream


@dataclasses.dataclass
class Table:
    name: str
    title: str
    kind: str                    # 'images' (FID), 'digits' (digits-FID), 'toy' (sliced W)
    dataset: str = ""            # FID statistics flag suffix for 'images'
    rows: list = dataclasses.field(default_factory=list)
    note: str = ""
    conditional: bool = False    # rows sample class-conditional models: accuracy of samples beside the quality


def sampler_label(s):
    """A sampler as the tables show it (RK45, Euler N=20, PC .../..., N=1000; ', w = 2' when guided)."""
    return (_sampler_label(s) + (f", w = {s['guidance']:g}" if "guidance" in s else "")
            + (f" from t = {s['guidance_tmin']:g}" if s.get("guidance_tmin") else ""))


def _sampler_label(s):
    if s.get("method") == "pc":
        return f"PC {s.get('predictor')}/{s.get('corrector')}, N={s.get('N')}"
    if s.get("ode_solver") in ("euler", "heun"):
        return f"{s['ode_solver'].capitalize()} N={s['N']}"
    return ("RK45" + (f" tol {s['rtol']:g}" if "rtol" in s else "")
            + (f", max {s['max_nfe']} NFE" if s.get("max_nfe") else ""))


def sampler_tag(sampler, n):
    """A sampler and sample count as row ids and cache file names spell them: euler_N20_n500 (a class and
    guidance: euler_N20_c3_w2_n500; a random class per sample, c-1)."""
    s = sampler
    if s.get("method") == "pc":
        tag = f"pc_{s['predictor']}_{s['corrector']}_N{s['N']}"
    elif s.get("ode_solver") in ("euler", "heun"):
        tag = f"{s['ode_solver']}_N{s['N']}"
    else:
        tag = "rk45" + (f"_tol{s['rtol']:g}" if "rtol" in s else "")
    if "class_label" in s:
        tag += f"_c{s['class_label']}"
    if "guidance" in s:
        tag += f"_w{s['guidance']:g}"
    if s.get("guidance_tmin"):
        tag += f"_from{s['guidance_tmin']:g}"
    return f"{tag}_n{n}"


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
    pp_paper = "github.com/Newbeeer/pfgmpp README (checkpoint table)"
    pfgmpp_rows = [_pp_row(name, label, fid, pp_paper) for name, label, fid in (
        ("cifar10_songunet_ncsnpp_d128", "PFGM++ D = 128, NCSN++", 1.92),
        ("cifar10_songunet_ncsnpp_d2048", "PFGM++ D = 2048, NCSN++", 1.91),
        ("cifar10_songunet_ncsnpp_d2048_cond", "PFGM++ D = 2048, NCSN++, class-conditional", 1.74),
        ("cifar10_songunet_ncsnpp_edm", "EDM (PFGM++ D = inf), NCSN++", 1.98))]
    ffhq_rows = [_pp_row(name, label, fid, pp_paper) for name, label, fid in (
        ("ffhq64_songunet_ddpmpp_d128", "PFGM++ D = 128, DDPM++", 2.43),
        ("ffhq64_songunet_ddpmpp_edm", "EDM (PFGM++ D = inf), DDPM++", 2.53))]
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
        "pfgmpp": Table("pfgmpp", "CIFAR-10: PFGM++ (D extra dimensions) and its D = inf limit, EDM", "images",
                        "cifar10", pfgmpp_rows, _PP_NOTE),
        "pfgmpp_ffhq64": Table("pfgmpp_ffhq64", "FFHQ 64: PFGM++ D = 128 and EDM", "images", "ffhq64", ffhq_rows,
                               _PP_NOTE),
    }


_EDM_HEUN = dict(method="ode", ode_solver="heun", N=18)
PP_SEED_SETS = (0, 50000, 100000)  # the PFGM++ README's --seeds=0-49999, 50000-99999, 100000-149999
_PP_NOTE = ("FID: the minimum over 3 sets of samples (seeds 0, 50000 and 100000 on; 50,000 each by default), as "
            "the PFGM++ README reports it; samples rounded to uint8 as EDM's generate.py. Import a released "
            "checkpoint with `python tools/import_checkpoint.py FILE --workdir DIR/<model>` or train the config.")


def _pp_row(name, label, fid, source):
    """A README row of the original: its config, EDM's Heun 18 (35 NFE), 3 seed sets."""
    return Row(f"pfgmpp_{name}", f"{label}, Heun 18", f"pfgmpp_{name}", f"configs/pfgmpp/{name}.py", {}, _EDM_HEUN,
               dict(fid=fid, is_=NOT_TRANSCRIBED, nfe=35), source=source + " (min of 3 seed sets)", published=source,
               seed_sets=PP_SEED_SETS)
# PFGM++ study: the D values, the Heun levels (NFE 2N - 1: 35, 13, 9, 5) and the weight precisions
PFGMPP_D = (1, 8, 64, 512, 2048, math.inf)
PFGMPP_STEPS = (18, 7, 5, 3)
PFGMPP_BITS = (6, 5)


def _d_tag(d):
    return "inf" if math.isinf(d) else str(int(d))


def _d_label(d):
    return "EDM (PFGM++ D = inf)" if math.isinf(d) else f"PFGM++ D = {int(d)}"


def _pfgmpp_rows(prefix, config, bits=PFGMPP_BITS):
    """Per D: Heun at every PFGMPP_STEPS, then the 18-level Heun with quantized weights."""
    rows = []
    for d in PFGMPP_D:
        model, over = f"{prefix}_pfgmpp_d{_d_tag(d)}", {"training.aug_dim": float(d)}
        for n in PFGMPP_STEPS:
            rows.append(Row(f"pfgmpp_d{_d_tag(d)}_heun{n}", f"{_d_label(d)}, Heun {n} ({2 * n - 1} NFE)", model,
                            config, over, dict(method="ode", ode_solver="heun", N=n), paper=None,
                            source="no paper analogue (the PFGM++ paper's D and step studies are not transcribed)"))
        for b in bits:
            rows.append(Row(f"pfgmpp_d{_d_tag(d)}_q{b}", f"{_d_label(d)}, Heun 18, weights at {b} bits", model,
                            config, over, _EDM_HEUN, paper=None, source="robustness (PFGM++ paper: not transcribed)",
                            quantize_bits=b))
    return rows


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
            tag = "rk45" if smp.get("ode_solver") == "rk45" and smp["method"] == "ode" else sampler_tag(smp, 0)[:-3]
            toy.append(Row(f"{m}_{tag}", f"{names[m] if smp['method'] == 'ode' else names[m].split()[0] + ' SDE'}, "
                           f"MLP, {sampler_label(smp)}", f"toy_{m}", T[m], sampler=smp, paper=None,
                           source="no paper analogue (toy)"))
    from experiments import cond_tables
    return {
        "cifar10": Table("cifar10", "Digits 8x8 (CPU analogue of the CIFAR-10 table): digits-FID / NFE, RK45",
                         "digits", rows=main),
        "euler": Table("euler", "Digits 8x8: robustness to the step count (Euler and Heun)", "digits", rows=euler),
        "pc": Table("pc", "Digits 8x8: PFGM's ODE against the predictor-corrector samplers", "digits", rows=pc),
        "weak": Table("weak", "Digits 8x8: robustness to a weaker network (nf 16 vs 32)", "digits", rows=weak),
        "convergence": Table("convergence", "Digits 8x8: digits-FID (RK45) of every model along its training",
                             "digits", rows=convergence),
        "toy": Table("toy", "2-D checkerboard: sliced Wasserstein / MMD / NFE", "toy", rows=toy),
        "pfgmpp": Table("pfgmpp", "Digits 8x8: PFGM++ from D = 1 (PFGM's kernel) to D = inf (EDM), Heun steps and "
                        "quantized weights", "digits", rows=_pfgmpp_rows("digits", "configs/pfgmpp/digits_ddpmpp.py")),
        "pfgmpp_convergence": Table(
            "pfgmpp_convergence", "Digits 8x8: digits-FID (Heun 18) of every PFGM++ model along its training",
            "digits", rows=[Row(f"pfgmpp_d{_d_tag(d)}_step{step}", f"{_d_label(d)}, step {step}",
                                f"digits_pfgmpp_d{_d_tag(d)}", "configs/pfgmpp/digits_ddpmpp.py",
                                {"training.aug_dim": float(d)}, _EDM_HEUN, paper=None, source="convergence check",
                                step=step)
                            for d in PFGMPP_D for step in CONVERGENCE_STEPS if step <= last]),
        "pfgmpp_toy": Table("pfgmpp_toy", "2-D checkerboard: PFGM++ from D = 1 to D = inf", "toy",
                            rows=_pfgmpp_rows("toy", "configs/pfgmpp/toy2d.py", bits=())),
        **_songunet_tables(last),
        **cond_tables.cpu_tables(rk, [k for k in CONVERGENCE_STEPS if k <= last]),
    }


# The CPU analogue of the original's network and augmentation: PFGM++ D = 128 on the digits with score_sde's
# small NCSN++ (nf 32) against EDM's SongUNet in its NCSN++ settings scaled down to the same parameter count
# (model_channels 32 at two levels: 753k against 749k), without and with EDM's augmentation pipe at the
# original's p = 0.12; the same steps, images per step and optimizer for all three.
_SONGUNET = {"model.model_channels": 32}
PP_NETWORKS = (
    ("digits_pp_ncsnpp", "configs/pfgmpp/digits_ddpmpp.py", {}, "score_sde NCSN++ nf 32"),
    ("digits_pp_songunet", "configs/pfgmpp/digits_songunet.py", _SONGUNET, "SongUNet NCSN++ 32 channels"),
    ("digits_pp_songunet_aug", "configs/pfgmpp/digits_songunet.py",
     dict(_SONGUNET, **{"model.augment_dim": 9, "training.augment_p": 0.12}), "SongUNet, augmentation p = 0.12"),
)


def _songunet_tables(last):
    rows, steps = [], []
    for model, config, over, label in PP_NETWORKS:
        for n in (18, 7):
            rows.append(Row(f"{model}_heun{n}", f"PFGM++ D = 128, {label}, Heun {n} ({2 * n - 1} NFE)", model,
                            config, over, dict(method="ode", ode_solver="heun", N=n), paper=None,
                            source="CPU analogue of the original's SongUNet and augmentation (no paper number)"))
        steps += [Row(f"{model}_step{step}", f"{label}, step {step}", model, config, over, _EDM_HEUN, paper=None,
                      source="convergence check", step=step) for step in CONVERGENCE_STEPS if step <= last]
    return {"pfgmpp_songunet": Table("pfgmpp_songunet", "Digits 8x8: PFGM++ (D = 128) with score_sde's NCSN++ vs "
                                     "EDM's SongUNet (equal parameters), with and without EDM's augmentation",
                                     "digits", rows=rows),
            "pfgmpp_songunet_convergence": Table(
                "pfgmpp_songunet_convergence", "Digits 8x8: digits-FID (Heun 18) of the NCSN++ / SongUNet PFGM++ "
                "models along their training", "digits", rows=steps)}


def tables(scale, rk45_tol=1e-3, n_iters=None):
    """{name: Table} of `scale` ('gpu' or 'cpu'); rk45_tol and n_iters (the last convergence snapshot)
    shape the cpu tables only."""
    return _gpu_tables() if scale == "gpu" else _cpu_tables(rk45_tol, n_iters)


def table_names(scale):
    return list(tables(scale))

