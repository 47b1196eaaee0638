"""The class-conditional study's tables (cpu scale; docs/conditional.md): the three methods trained with the
digits' ten classes and label dropout 0.1, sampled for a random class per sample at guidance w in GUIDANCE,
beside the same networks trained unconditionally; their convergence; and 2-D toys coloured by class.

  conditional              digits: accuracy of samples (the digits classifier's class = the asked one) and
                           digits-FID, PFGM (RK45), PFGM++ D = 128 (Heun 18), VP ODE (RK45), w = 1 ... 3,
                           then the unconditional models of the same recipe
  conditional_convergence  digits-FID (w = 1) of each conditional model at every snapshot
  conditional_toy          eight Gaussians and checkerboard (8 classes each), w = 1 and 3
"""
from experiments.tables import Row, Table

GUIDANCE = (1.0, 1.5, 2.0, 3.0)
TOY_GUIDANCE = (1.0, 3.0)
RK45_MAX_NFE = 1000   # unguided, RK45 takes 68-81 NFE on the digits and 68-290 on the toys
_HEUN18 = dict(method="ode", ode_solver="heun", N=18)
# PFGM is also sampled with fixed Heun steps: guided far from the data its adaptive RK45 can stall
# (docs/conditional.md); 20 steps (39 NFE) matched RK45's digits-FID in the unconditional study
_PFGM_HEUN = {"digits": dict(method="ode", ode_solver="heun", N=20), "toy": dict(method="ode", ode_solver="heun", N=50)}
_NOTE = ("no paper analogue: neither paper reports class-conditional PFGM; PFGM++'s conditional CIFAR-10 "
         "(FID 1.74, D = 2048) is a GPU-scale run")


def _methods(rk):
    """name -> (label, conditional config, sampler, unconditional model folder, its config, its overrides)."""
    return {
        "pfgm": ("PFGM", "configs/poisson/digits_ddpmpp_cond.py", rk, "digits_pfgm",
                 "configs/poisson/digits_ddpmpp.py", {}),
        "pfgmpp": ("PFGM++ D = 128", "configs/pfgmpp/digits_ddpmpp_cond.py", _HEUN18, "digits_pfgmpp_d128",
                   "configs/pfgmpp/digits_ddpmpp.py", {"training.aug_dim": 128.0}),
        "vp": ("VP ODE", "configs/vp/digits_ddpmpp_cond.py", rk, "digits_vp", "configs/vp/digits_ddpmpp.py", {}),
    }


def cpu_tables(rk, convergence_steps):
    """{name: Table} of the conditional study; rk: the study's RK45 sampler, convergence_steps: the snapshots.
    RK45 is capped at RK45_MAX_NFE here: a guided batch can stall it (one stiff sample sets the step of all),
    and a row past the cap reports that instead of running for an hour at the configs' 10000."""
    rk = dict(rk, max_nfe=RK45_MAX_NFE)
    methods = _methods(rk)
    main, uncond, convergence = [], [], []
    for m, (label, cfg, smp, u_model, u_cfg, u_over) in methods.items():
        for w in GUIDANCE:
            main.append(Row(f"{m}_w{w:g}", f"{label}, conditional, w = {w:g}", f"digits_{m}_cond", cfg,
                            sampler=dict(smp, class_label=-1, guidance=w), paper=None, source=_NOTE))
            if m == "pfgm":
                main.append(Row(f"{m}_heun20_w{w:g}", f"{label}, conditional, w = {w:g}", f"digits_{m}_cond", cfg,
                                sampler=dict(_PFGM_HEUN["digits"], class_label=-1, guidance=w), paper=None, source=_NOTE))
                if w > 1:  # guidance only above z = 2, about half the distance to a digit of another class
                    main.append(Row(f"{m}_from2_w{w:g}", f"{label}, conditional, w = {w:g} from z = 2",
                                    f"digits_{m}_cond", cfg, sampler=dict(smp, class_label=-1, guidance=w,
                                                                         guidance_tmin=2.0), paper=None, source=_NOTE))
        uncond.append(Row(f"{m}_uncond", f"{label}, unconditional", u_model, u_cfg, u_over, smp, paper=None,
                          source="the unconditional model of the same recipe"))
        for step in convergence_steps:
            convergence.append(Row(f"{m}_cond_step{step}", f"{label} conditional, step {step}", f"digits_{m}_cond",
                                   cfg, sampler=dict(smp, class_label=-1, guidance=1.0), paper=None,
                                   source="convergence check", step=step))
    toy = []
    for ds in ("eight_gaussians", "checkerboard"):
        for m, cfg, label, smp in (("pfgm", "configs/poisson/toy2d_cond.py", "PFGM", rk),
                                   ("pfgmpp", "configs/pfgmpp/toy2d_cond.py", "PFGM++ D = 128", _HEUN18),
                                   ("vp", "configs/vp/toy2d_cond.py", "VP ODE", rk)):
            for w in TOY_GUIDANCE:
                toy.append(Row(f"{ds}_{m}_w{w:g}", f"{ds}, {label}, w = {w:g}", f"toy_{m}_cond_{ds}", cfg,
                               {"data.dataset": ds}, dict(smp, class_label=-1, guidance=w), paper=None,
                               source="no paper analogue (toy)"))
                if m == "pfgm":
                    toy.append(Row(f"{ds}_{m}_heun50_w{w:g}", f"{ds}, {label}, w = {w:g}", f"toy_{m}_cond_{ds}", cfg,
                                   {"data.dataset": ds}, dict(_PFGM_HEUN["toy"], class_label=-1, guidance=w),
                                   paper=None, source="no paper analogue (toy)"))
    return {
        "conditional": Table("conditional", "Digits 8x8, class-conditional: accuracy of samples and digits-FID over "
                             "the guidance w", "digits", rows=main + uncond, conditional=True),
        "conditional_convergence": Table(
            "conditional_convergence", "Digits 8x8: digits-FID (w = 1) of every conditional model along its training",
            "digits", rows=convergence, conditional=True),
        "conditional_toy": Table("conditional_toy", "2-D eight Gaussians and checkerboard, class-conditional: accuracy, "
                                 "sliced Wasserstein / MMD", "toy", rows=toy, conditional=True),
    }
