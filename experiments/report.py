"""Rebuilds docs/RESULTS.md's generated tables and docs/figures/*.png from the
saved results (experiments/results/), however many runs are there.

    python experiments/report.py            # writes docs/RESULTS.md (between the
                                            # GENERATED markers) and docs/figures/
                                            # (or: python -m experiments.report)

Hand-written text lives in experiments/RESULTS_head.md and RESULTS_tail.md and
is copied around the generated part, so rerunning after more runs finish
refreshes every number. Small derived quantities (teacher statistics on the
validation split, D / Brier / NLL of each coefficient set) are cached in
experiments/results/derived.json.

Methods are handled by their registry names (`common.canonical_method`:
recorded results under older names load as the new ones); the generated
text names them as they were recorded and published (`label`), so that
the same results give the same docs/RESULTS.md.
"""
import glob
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

if __package__:  # python -m experiments.report
    from . import common
else:  # python experiments/report.py: this folder is sys.path[0]
    import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIG = os.path.join(ROOT, "docs", "figures")
OUT = os.path.join(ROOT, "docs", "RESULTS.md")
HEAD = os.path.join(common.HERE, "RESULTS_head.md")
TAIL = os.path.join(common.HERE, "RESULTS_tail.md")
DERIVED = os.path.join(common.RESULTS, "derived.json")
TEACHERS = list(common.TEACHERS)
SEEDS = (0, 1, 2, 3, 4)
ORDER_TEACHERS = common.ORDER_TEACHERS
NAMES = {
    "kl": "KL",
    "ptloss:deviation:5": "PT-proxy (Eq. 21)",
    "ptloss_random:5": "PT-random",
    "ptloss:brier:5": "PT-proxy (brier)",
    "ptloss:nll:5": "PT-proxy (nll)",
    "kl_calibrated:temperature": "KL, recalibrated (temperature)",
    "kl_calibrated:bias": "KL, recalibrated (bias)",
    "kl_calibrated:vector": "KL, recalibrated (vector)",
    "ptloss_calibrated:vector:brier:5": "PT-proxy (brier) on the vector-recalibrated teacher",
}
CALIBRATED_METHODS = ["kl_calibrated:temperature", "kl_calibrated:bias", "kl_calibrated:vector",
                      "ptloss_calibrated:vector:brier:5"]
FAMILY_NAMES = {"temperature": "temperature (selected)",
                "label_smoothing": "label smoothing (selected)", "focal": "focal (selected)"}


def label(method):
    """A method as docs/RESULTS.md names it: the name its runs were recorded under."""
    return common.legacy_method(method)


def _load_records(folder, last_key, read=None):
    """`{(teacher, seed, record[last_key]): record}` of the JSON files in `folder`."""
    out = {}
    for p in glob.glob(os.path.join(folder, "*.json")):
        if read:
            r = read(p)
        else:
            with open(p) as f:
                r = json.load(f)
        out[(r["teacher"], r["seed"], r[last_key])] = r
    return out


def load_runs():
    return _load_records(common.RUNS_DIR, "method", common.read_run)


def load_search():
    return _load_records(common.SEARCH_DIR, "order")


def load_calibrations():
    return _load_records(common.CALIBRATION_DIR, "method")


def load_search_calibrated():
    return _load_records(common.SEARCH_CALIBRATED_DIR, "calibration")


def section_recalibration(runs, search, calibrations, search_cal):
    """The recalibrated teacher (the user's first alternative): its distance to
    p* without training, and the students distilled from it."""
    lines = ["### Recalibrating the teacher instead (or first)", "",
             "The Proxy Teacher is a map of the teacher's probabilities fitted on the labelled "
             "validation split; so is ordinary recalibration (`ptloss_tf.calibrate_teacher`, "
             "fitted by validation NLL): temperature `q ∝ p^(1/T)`, bias `q ∝ p·exp(b)` (a "
             "class-prior correction), vector scaling `q ∝ exp(a·log p + b)`. "
             "`python -m experiments.study --phases calibration calibrated`.", "",
             "#### No training: KL(p* ‖ ·) on the test split of each map of the teacher "
             "(mean ± std over seeds)", "",
             "| teacher | raw teacher | proxy (brier, M=5) | temperature | bias | vector | "
             "proxy (brier) of the vector-recalibrated teacher |", "|---|---|---|---|---|---|---|"]
    for t in TEACHERS:
        cols = [fmt([calibrations[(t, s_, "vector")]["raw_teacher_test"]["kl_to_p_star"]
                     for s_ in SEEDS if (t, s_, "vector") in calibrations], 1, 4),
                fmt([search[(t, s_, 5)]["chosen"]["brier"]["proxy_test"]["kl_to_p_star"]
                     for s_ in SEEDS if (t, s_, 5) in search], 1, 4)]
        for c in common.CALIBRATIONS:
            cols.append(fmt([calibrations[(t, s_, c)]["test"]["kl_to_p_star"]
                             for s_ in SEEDS if (t, s_, c) in calibrations], 1, 4))
        cols.append(fmt([search_cal[(t, s_, "vector")]["chosen"]["brier"]["proxy_test"][
            "kl_to_p_star"] for s_ in SEEDS if (t, s_, "vector") in search_cal], 1, 4))
        lines.append(f"| {t} | " + " | ".join(cols) + " |")
    methods = ["kl", "ptloss:brier:5"] + CALIBRATED_METHODS
    lines += [""] + metric_table(runs, None, methods, "accuracy",
                                 "Students: accuracy (%) against the sampled test labels", 100, 2,
                                 best_col=False)
    lines += [""] + metric_table(runs, None, methods, "kl_to_p_star",
                                 "Students: KL(p* ‖ student) (nats)", 1, 4, best_col=False)
    lines += ["", "#### Paired differences pooled by bias type (accuracy points; Wilcoxon p, "
              "pairs; ΔKL(p*‖student))", "",
              "| group | KL recal. (vector) − KL | PT (brier) − KL recal. (vector) | "
              "PT on recal. (vector) − KL recal. (vector) | KL recal. (temperature) − KL | "
              "KL recal. (bias) − KL |", "|---|---|---|---|---|---|"]
    pairs = [("kl_calibrated:vector", "kl"), ("ptloss:brier:5", "kl_calibrated:vector"),
             ("ptloss_calibrated:vector:brier:5", "kl_calibrated:vector"),
             ("kl_calibrated:temperature", "kl"), ("kl_calibrated:bias", "kl")]
    for g, ts in GROUPS.items():
        cols = []
        for m1, m2 in pairs:
            cols.append(pooled_difference(runs, [(t, m1, m2) for t in ts]))
        lines.append(f"| {g} | " + " | ".join(cols) + " |")
    return lines


def pooled_difference(runs, comparisons):
    """One table cell: mean (m1 − m2) test accuracy in points over every seed
    of every `(teacher, m1, m2)` where both ran, its Wilcoxon p and pair
    count, and the mean ΔKL(p*‖student); "-" with fewer than 2 pairs."""
    d, dk = [], []
    for t, m1, m2 in comparisons:
        for s_ in SEEDS:
            if (t, s_, m1) in runs and (t, s_, m2) in runs:
                d.append(runs[(t, s_, m1)]["accuracy"] - runs[(t, s_, m2)]["accuracy"])
                dk.append(runs[(t, s_, m1)]["kl_to_p_star"] - runs[(t, s_, m2)]["kl_to_p_star"])
    if len(d) < 2:
        return "-"
    d = np.array(d)
    w = stats.wilcoxon(d).pvalue if np.any(d != 0) else 1.0
    return f"{100 * d.mean():+.2f} (p={p_str(w)}, n={len(d)}); ΔKL* {np.mean(dk):+.3f}"


def vals(runs, teacher, method, key, seeds=SEEDS):
    return np.array([runs[(teacher, s, method)][key] for s in seeds
                     if (teacher, s, method) in runs], dtype=np.float64)


def fmt(a, scale=1.0, digits=2):
    a = np.asarray(a, dtype=np.float64) * scale
    if a.size == 0:
        return "-"
    if a.size == 1:
        return f"{a[0]:.{digits}f} (n=1)"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}" + ("" if a.size == 5 else f" (n={a.size})")


def paired(runs, teacher, m1, m2, key="accuracy"):
    """Paired over the seeds both methods have: mean diff, t-test p, Wilcoxon p."""
    seeds = [s for s in SEEDS if (teacher, s, m1) in runs and (teacher, s, m2) in runs]
    if len(seeds) < 2:
        return None
    a = vals(runs, teacher, m1, key, seeds)
    b = vals(runs, teacher, m2, key, seeds)
    d = a - b
    t_p = stats.ttest_rel(a, b).pvalue if np.any(d != d[0]) else float("nan")
    try:
        w_p = stats.wilcoxon(a, b).pvalue if np.any(d != 0) else 1.0
    except ValueError:
        w_p = float("nan")
    return {"n": len(seeds), "diff": d.mean(), "sd": d.std(ddof=1), "t_p": t_p, "w_p": w_p,
            "wins": int((d > 0).sum()), "losses": int((d < 0).sum())}


def selected_baselines(runs):
    """Per teacher and family: the grid value with the best seed-0 validation accuracy."""
    sel = {}
    for t in TEACHERS:
        sel[t] = {}
        for fam, grid in common.FAMILIES.items():
            best, best_acc = None, -1
            complete = True
            for v in grid:
                m = f"{fam}:{v:g}"
                if (t, 0, m) not in runs:
                    complete = False
                    continue
                if runs[(t, 0, m)]["val_accuracy"] > best_acc:
                    best, best_acc = m, runs[(t, 0, m)]["val_accuracy"]
            if best is not None:
                sel[t][fam] = (best, complete)
    return sel


def best_baseline(runs, sel, t):
    """The study's "best baseline": among the three families' selected values, the
    one with the best seed-0 validation accuracy (= study.best_grid_method)."""
    cands = [(runs[(t, 0, m)]["val_accuracy"], -i, m) for i, (m, _) in enumerate(sel[t].values())
             if (t, 0, m) in runs]
    return max(cands)[2] if cands else None


def _canonical_key(key):
    teacher, seed, method = key.split("|", 2)
    return f"{teacher}|{seed}|{common.canonical_method(method)}"


def derived(runs):
    """Teacher validation stats and D/Brier/NLL of every PTLoss run's eta (cached)."""
    cache = {}
    if os.path.exists(DERIVED):
        with open(DERIVED) as f:
            cache = json.load(f)
    cache.setdefault("teacher", {})
    # Keys "teacher|seed|method"; recorded ones carry the older method names.
    cache["eta_scores"] = {_canonical_key(k): v for k, v in cache.get("eta_scores", {}).items()}
    need_t = [(t, s) for t in TEACHERS for s in SEEDS if f"{t}|{s}" not in cache["teacher"]]
    need_e = [k for k, r in runs.items() if "eta" in r and "|".join(map(str, k)) not in cache["eta_scores"]]
    if need_t or need_e:
        import ptloss_tf
        from ptloss_tf import search as S
        from ptloss_tf.training.synthetic_summary import teacher_summary

        by_ts = {}
        for k in need_e:
            by_ts.setdefault((k[0], k[1]), []).append(k)
        for t, s in sorted(set(need_t) | set(by_ts)):
            task, _ = common.get_task(t, s)
            if f"{t}|{s}" not in cache["teacher"]:
                cache["teacher"][f"{t}|{s}"] = {
                    "validation": teacher_summary(task.validation),
                    "test": teacher_summary(task.test)}
            pv, yv = task.validation.teacher_probs, task.validation.examples.labels
            for k in by_ts.get((t, s), []):
                eta = ptloss_tf.Coefficients(np.asarray(runs[k]["eta"]))
                try:
                    q = np.asarray(ptloss_tf.proxy_teacher(pv, eta))
                    cache["eta_scores"]["|".join(map(str, k))] = {
                        "deviation": float(S.deviation(q, yv)),
                        "brier": float(S.brier_score(q, yv)),
                        "nll": float(S.proxy_nll(q, yv)),
                        "proxy_val_mse_to_p_star": float(np.mean(np.sum(
                            (q - task.validation.p_star) ** 2, 1))),
                    }
                except Exception as e:  # noqa: BLE001
                    cache["eta_scores"]["|".join(map(str, k))] = {"error": repr(e)[:200]}
        common.atomic_write_json(DERIVED, cache)
    return cache


# -- sections -----------------------------------------------------------------

GROUPS = {
    "control (teacher = p*)": ["p_star"],
    "over-confidence (3 levels)": ["overconf_1.5", "overconf_2.5", "overconf_4"],
    "prior shift (3 levels)": ["prior_0.5", "prior_1", "prior_2"],
    "noise (3 levels)": ["noise_0.5", "noise_1", "noise_2"],
    "all 10 teachers": TEACHERS,
}


def section_headline(runs, sel):
    """Δ vs KL by bias type, pooled over the group's teachers × seeds."""
    lines = ["### Headline: change against KL by bias type (accuracy points, pooled pairs; Wilcoxon p)", "",
             "Each cell: mean of (method − KL) test accuracy over the (teacher, seed) pairs of the group, "
             "Wilcoxon signed-rank p, and the number of pairs; last row of each block's cell: ΔKL(p*‖student). "
             "`best baseline` = per teacher the single grid value with the best seed-0 validation accuracy.", ""]
    methods = [("PT-proxy (Eq. 21)", lambda t: "ptloss:deviation:5"),
               ("PT-proxy (brier)", lambda t: "ptloss:brier:5"),
               ("PT-proxy (nll)", lambda t: "ptloss:nll:5"),
               ("PT-random", lambda t: "ptloss_random:5"),
               ("best baseline", lambda t: best_baseline(runs, sel, t))]
    lines.append("| group | " + " | ".join(n for n, _ in methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    for g, ts in GROUPS.items():
        cols = []
        for _, f in methods:
            cols.append(pooled_difference(runs, [(t, f(t), "kl") for t in ts if f(t)]))
        lines.append(f"| {g} | " + " | ".join(cols) + " |")
    return lines


def section_teachers(der, search):
    lines = ["### Teachers (test split, mean over the 5 task seeds)", "",
             "| teacher | overconf. | prior shift | noise | teacher acc. % | Bayes acc. % | teacher TVD to labels (val) | MSE to p* | KL(p*‖teacher) | mean max prob |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in TEACHERS:
        c = common.TEACHERS[t]
        rows = [der["teacher"].get(f"{t}|{s}") for s in SEEDS]
        rows = [r for r in rows if r]
        if not rows:
            continue
        m = lambda split, k: np.mean([r[split][k] for r in rows])  # noqa: E731
        lines.append(
            f"| {t} | {c['overconfidence']:g} | {c['prior_shift']:g} | {c['noise']:g} | "
            f"{100 * m('test', 'teacher_accuracy'):.2f} | {100 * m('test', 'bayes_accuracy'):.2f} | "
            f"{m('validation', 'teacher_tvd_to_labels'):.3f} | {m('test', 'teacher_mse_to_p_star'):.4f} | "
            f"{m('test', 'teacher_kl_to_p_star'):.4f} | {m('test', 'teacher_mean_max_prob'):.3f} |")
    return lines


def section_criterion_proxy(search):
    lines = ["### 2b (no training): which criterion's proxy teacher lands closer to p*?", "",
             "Mean squared error `mean ||q - p*||²` on the **test** split of the proxy teacher chosen on the validation split "
             "(100 candidates, convex box, same candidates for every criterion), order 5, mean ± std over seeds; "
             "`raw` = the teacher itself (eta = 0), `random` = the paper's random coefficients.", "",
             "| teacher | raw teacher | Eq. 21 (deviation) | brier | nll | random |", "|---|---|---|---|---|---|"]
    for t in TEACHERS:
        rs = [search.get((t, s, 5)) for s in SEEDS]
        rs = [r for r in rs if r]
        if not rs:
            continue
        raw = [r["raw_teacher_test"]["mse_to_p_star"] for r in rs]
        cols = [fmt(raw, 1, 4)]
        for c in ("deviation", "brier", "nll"):
            cols.append(fmt([r["chosen"][c]["proxy_test"]["mse_to_p_star"] for r in rs], 1, 4))
        cols.append(fmt([r["random_proxy_test"].get("mse_to_p_star", np.nan) for r in rs], 1, 4))
        lines.append(f"| {t} | " + " | ".join(cols) + " |")
    lines += ["", "Over all teachers, seeds and orders 1..5: how often the chosen proxy teacher is **closer** to p* than the raw teacher (test MSE), and the median ratio proxy MSE / raw MSE:", "",
              "| criterion | closer / total | median MSE ratio | mean KL(p*‖proxy) − KL(p*‖teacher) |", "|---|---|---|---|"]
    for c in ("deviation", "brier", "nll", "random"):
        closer, total, ratios, dkl = 0, 0, [], []
        for (t, s, o), r in search.items():
            raw = r["raw_teacher_test"]
            pr = r["random_proxy_test"] if c == "random" else r["chosen"][c]["proxy_test"]
            if "mse_to_p_star" not in pr:
                continue
            total += 1
            closer += pr["mse_to_p_star"] < raw["mse_to_p_star"]
            if raw["mse_to_p_star"] > 0:
                ratios.append(pr["mse_to_p_star"] / raw["mse_to_p_star"])
            dkl.append(pr["kl_to_p_star"] - raw["kl_to_p_star"])
        lines.append(f"| {c} | {closer} / {total} | {np.median(ratios):.2f} | {np.mean(dkl):+.4f} |")
    lines += ["", "(The `p_star` teacher has raw MSE 0, so any perturbation moves it away; it is excluded from the ratio.)"]
    return lines


def metric_table(runs, sel, methods, key, title, scale, digits, best_col=True):
    head = ["teacher"] + [NAMES.get(m, m) for m in methods]
    if best_col:
        head += ["temperature (sel.)", "label smoothing (sel.)", "focal (sel.)"]
    lines = [f"#### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in TEACHERS:
        cols = [fmt(vals(runs, t, m, key), scale, digits) for m in methods]
        if best_col:
            for fam in common.FAMILIES:
                if fam in sel[t]:
                    m, complete = sel[t][fam]
                    cols.append(f"{fmt(vals(runs, t, m, key), scale, digits)} [{m.split(':')[1]}{'' if complete else '*'}]")
                else:
                    cols.append("-")
        lines.append(f"| {t} | " + " | ".join(cols) + " |")
    return lines


def section_core(runs, sel):
    methods = ["kl", "ptloss:deviation:5", "ptloss_random:5", "ptloss:brier:5", "ptloss:nll:5"]
    out = ["### Student results (test split, 4,000 examples per seed; mean ± std over seeds)", "",
           "Baseline columns: the grid value with the best seed-0 **validation** accuracy, in brackets "
           "(`*` = chosen from an incomplete grid); its 5 seeds are that value's seed-0 grid run plus seeds 1-4.", ""]
    out += metric_table(runs, sel, methods, "accuracy", "Accuracy (%) against the sampled test labels", 100, 2)
    out += [""] + metric_table(runs, sel, methods, "expected_accuracy",
                               "Expected accuracy (%) = mean p*(argmax student) — the same decisions scored against p* instead of sampled labels (less noisy)", 100, 2)
    out += [""] + metric_table(runs, sel, methods, "nll", "Test NLL (nats, against the sampled labels)", 1, 4)
    out += [""] + metric_table(runs, sel, methods, "kl_to_p_star", "KL(p* ‖ student) (nats)", 1, 4)
    return out


def p_str(p):
    return "-" if p is None or not np.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def section_tests(runs, sel):
    lines = ["### Significance: PTLoss-proxy (Eq. 21, M=5) vs KL and vs the best baseline", "",
             "Paired over seeds (same task, same initialisation). `t`: two-sided paired t-test "
             "(`scipy.stats.ttest_rel`); `W`: two-sided Wilcoxon signed-rank (`scipy.stats.wilcoxon`; with 5 pairs its "
             "smallest possible p is 0.0625, so per-teacher significance at 0.05 can only come from the t-test). "
             "Best baseline = the temperature / smoothing / focal grid value with the best seed-0 validation accuracy (KL excluded; it has its own columns). "
             "Δ in accuracy points (PT minus other); KL Δ = change of KL(p*‖student) (negative = closer to p*).", "",
             "| teacher | Δacc vs KL | t p | W p | wins/losses | ΔKL(p*) vs KL | t p | best baseline | Δacc vs best | t p | W p |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    pt = "ptloss:deviation:5"
    all_d_kl, all_d_best, avg = [], [], {}
    for t in TEACHERS:
        a = paired(runs, t, pt, "kl")
        k = paired(runs, t, pt, "kl", "kl_to_p_star")
        bb = best_baseline(runs, sel, t)
        b = paired(runs, t, pt, bb) if bb else None
        if a is None:
            continue
        seeds = [s for s in SEEDS if (t, s, pt) in runs and (t, s, "kl") in runs]
        all_d_kl += list(vals(runs, t, pt, "accuracy", seeds) - vals(runs, t, "kl", "accuracy", seeds))
        if b:
            seeds_b = [s for s in SEEDS if (t, s, pt) in runs and (t, s, bb) in runs]
            all_d_best += list(vals(runs, t, pt, "accuracy", seeds_b) - vals(runs, t, bb, "accuracy", seeds_b))
        avg[t] = a["diff"]
        lines.append(
            f"| {t} | {100 * a['diff']:+.2f} ± {100 * a['sd']:.2f} | {p_str(a['t_p'])} | {p_str(a['w_p'])} | "
            f"{a['wins']}/{a['losses']} | {k['diff']:+.4f} | {p_str(k['t_p'])} | {label(bb) if bb else bb} | "
            + (f"{100 * b['diff']:+.2f} | {p_str(b['t_p'])} | {p_str(b['w_p'])} |" if b else "- | - | - |"))
    lines.append("")
    if all_d_kl:
        d = np.array(all_d_kl)
        w = stats.wilcoxon(d).pvalue if np.any(d != 0) else 1.0
        tt = stats.ttest_1samp(d, 0).pvalue
        lines.append(f"Pooled over all teachers and seeds ({len(d)} pairs): PT-proxy − KL = "
                     f"**{100 * d.mean():+.2f} points** (mean of per-teacher means {100 * np.mean(list(avg.values())):+.2f}); "
                     f"Wilcoxon p = {p_str(w)}, one-sample t p = {p_str(tt)}; {int((d > 0).sum())} wins, {int((d < 0).sum())} losses, {int((d == 0).sum())} ties. "
                     "Paper (Table 2): +1.31 points average over KL.")
    if all_d_best:
        d = np.array(all_d_best)
        w = stats.wilcoxon(d).pvalue if np.any(d != 0) else 1.0
        lines.append(f"\nPooled PT-proxy − best baseline ({len(d)} pairs): **{100 * d.mean():+.2f} points**, Wilcoxon p = {p_str(w)}.")
    # criterion students
    lines += ["", "#### 2b on students: proper criteria vs Eq. 21 (M=5), paired over seeds", "",
              "| teacher | brier − Eq. 21: Δacc (points) | t p | ΔKL(p*‖student) | t p | nll − Eq. 21: Δacc | t p | ΔKL(p*‖student) | t p |",
              "|---|---|---|---|---|---|---|---|---|"]
    pooled = {"ptloss:brier:5": ([], []), "ptloss:nll:5": ([], [])}
    for t in TEACHERS:
        cols = []
        for m in pooled:
            a = paired(runs, t, m, pt)
            k = paired(runs, t, m, pt, "kl_to_p_star")
            if a is None:
                cols += ["-"] * 4
                continue
            cols += [f"{100 * a['diff']:+.2f}", p_str(a["t_p"]), f"{k['diff']:+.4f}", p_str(k["t_p"])]
            for s in SEEDS:
                if (t, s, m) in runs and (t, s, pt) in runs:
                    pooled[m][0].append(runs[(t, s, m)]["accuracy"] - runs[(t, s, pt)]["accuracy"])
                    pooled[m][1].append(runs[(t, s, m)]["kl_to_p_star"] - runs[(t, s, pt)]["kl_to_p_star"])
        lines.append(f"| {t} | " + " | ".join(cols) + " |")
    for m, (da, dk) in pooled.items():
        if len(da) > 1:
            da, dk = np.array(da), np.array(dk)
            wa = stats.wilcoxon(da).pvalue if np.any(da != 0) else 1.0
            wk = stats.wilcoxon(dk).pvalue if np.any(dk != 0) else 1.0
            lines.append(f"\nPooled {NAMES[m]} − PT-proxy (Eq. 21), {len(da)} pairs: accuracy {100 * da.mean():+.2f} points "
                         f"(Wilcoxon p = {p_str(wa)}, {int((da > 0).sum())}/{int((da < 0).sum())} wins/losses); "
                         f"KL(p*‖student) {dk.mean():+.4f} (Wilcoxon p = {p_str(wk)}).")
    # the other PTLoss variants pooled vs KL
    lines += ["", "Every PTLoss variant and selected baseline against KL, pooled over teachers × seeds (accuracy points; Wilcoxon p):", "",
              "| method | pairs | mean Δacc vs KL | Wilcoxon p | wins/losses | mean ΔKL(p*‖student) |", "|---|---|---|---|---|---|"]
    methods = ["ptloss:deviation:5", "ptloss:brier:5", "ptloss:nll:5", "ptloss_random:5"]
    fam_rows = {fam: [] for fam in common.FAMILIES}
    for m in methods + list(fam_rows):
        d, dk = [], []
        for t in TEACHERS:
            mm = m
            if m in fam_rows:
                if m not in sel[t]:
                    continue
                mm = sel[t][m][0]
            for s in SEEDS:
                if (t, s, mm) in runs and (t, s, "kl") in runs:
                    d.append(runs[(t, s, mm)]["accuracy"] - runs[(t, s, "kl")]["accuracy"])
                    dk.append(runs[(t, s, mm)]["kl_to_p_star"] - runs[(t, s, "kl")]["kl_to_p_star"])
        if len(d) < 2:
            continue
        d = np.array(d)
        w = stats.wilcoxon(d).pvalue if np.any(d != 0) else 1.0
        name = NAMES.get(m, FAMILY_NAMES.get(m, m))
        lines.append(f"| {name} | {len(d)} | {100 * d.mean():+.2f} | {p_str(w)} | {int((d > 0).sum())}/{int((d < 0).sum())} | {np.mean(dk):+.4f} |")
    return lines


def section_orders(runs):
    lines = ["### Fig. 2a analogue: proxy-teacher vs random coefficients by order (accuracy %, mean ± std)", "",
             "| teacher | order | PT-proxy (Eq. 21) | PT-random | Δ proxy − random | t p |", "|---|---|---|---|---|---|"]
    for t in ORDER_TEACHERS:
        for o in range(1, 6):
            a = vals(runs, t, f"ptloss:deviation:{o}", "accuracy")
            b = vals(runs, t, f"ptloss_random:{o}", "accuracy")
            pr = paired(runs, t, f"ptloss:deviation:{o}", f"ptloss_random:{o}")
            lines.append(f"| {t} | {o} | {fmt(a, 100)} | {fmt(b, 100)} | "
                         + (f"{100 * pr['diff']:+.2f} | {p_str(pr['t_p'])} |" if pr else "- | - |"))
    # figure
    fig, axes = plt.subplots(1, len(ORDER_TEACHERS), figsize=(13, 3.8), sharey=False)
    for ax, t in zip(axes, ORDER_TEACHERS):
        for m, c, lab in (("ptloss:deviation:{}", "C0", "Proxy Teacher (Eq. 21)"),
                          ("ptloss_random:{}", "C3", "random [-1, 10]")):
            xs, mu, sd = [], [], []
            for o in range(1, 6):
                v = vals(runs, t, m.format(o), "accuracy") * 100
                if len(v):
                    xs.append(o), mu.append(v.mean()), sd.append(v.std(ddof=1) if len(v) > 1 else 0)
            if xs:
                ax.errorbar(xs, mu, yerr=sd, color=c, marker="o", capsize=3, label=lab)
        kl = vals(runs, t, "kl", "accuracy") * 100
        if len(kl):
            ax.axhline(kl.mean(), color="k", ls="--", lw=1, label="KL")
        ax.set_title(t)
        ax.set_xlabel("perturbation order M")
        ax.set_xticks(range(1, 6))
    axes[0].set_ylabel("student test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Fig. 2a analogue (synthetic task): Proxy Teacher vs random coefficients; mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(os.path.join(FIG, "fig2a_proxy_vs_random_by_order.png"), dpi=110)
    plt.close(fig)
    return lines


def section_tvd(runs, der):
    lines = ["### Fig. 2b analogue: student accuracy vs teacher validation TVD to the labels", ""]
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    for m, c in (("kl", "k"), ("ptloss:deviation:5", "C0"), ("ptloss:brier:5", "C2")):
        xs, ys = [], []
        for t in TEACHERS:
            for s in SEEDS:
                if (t, s, m) in runs and f"{t}|{s}" in der["teacher"]:
                    xs.append(der["teacher"][f"{t}|{s}"]["validation"]["teacher_tvd_to_labels"])
                    ys.append(runs[(t, s, m)]["accuracy"] * 100)
        if len(xs) < 3:
            continue
        ax.scatter(xs, ys, s=12, color=c, alpha=0.6, label=NAMES.get(m, m))
        r, p = stats.pearsonr(xs, ys)
        rho, ps = stats.spearmanr(xs, ys)
        lines.append(f"- {NAMES.get(m, m)}: {len(xs)} (teacher, seed) points, Pearson r = {r:+.2f} (p = {p_str(p)}), "
                     f"Spearman ρ = {rho:+.2f} (p = {p_str(ps)}).")
    ax.set_xlabel("teacher TVD to validation labels")
    ax.set_ylabel("student test accuracy (%)")
    ax.set_title("Fig. 2b analogue: one point per (teacher, seed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(FIG, "fig2b_accuracy_vs_teacher_tvd.png"), dpi=110)
    plt.close(fig)
    lines.append("")
    lines.append("Note: on this task the TVD mixes two things: the irreducible label noise (p* itself has TVD ≈ 0.27 to the sampled labels) and the teacher's bias; an over-confident teacher has a *lower* TVD than p* although it is farther from p*.")
    return lines


def section_deviation(runs, der):
    """Does the criterion value of a coefficient set track the student's accuracy?"""
    lines = ["### Does the Proxy Teacher's deviation D track student accuracy?", "",
             "Every PTLoss run (proxy with each criterion, random, every order): criterion value of its eta on the validation "
             "split vs the student's test accuracy **minus the KL student's** (same teacher, seed). Spearman ρ within each teacher "
             "(lower D should mean higher accuracy, i.e. ρ < 0 if D tracks accuracy), then pooled.", "",
             "| teacher | runs | ρ(D, Δacc) | ρ(Brier, Δacc) | ρ(NLL, Δacc) | ρ(proxy MSE to p* on val, Δacc) |", "|---|---|---|---|---|---|"]
    pts = {"deviation": [], "brier": [], "nll": [], "proxy_val_mse_to_p_star": []}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    cmap = plt.cm.tab10
    for i, t in enumerate(TEACHERS):
        rows = []
        for (tt, s, m), r in runs.items():
            if tt != t or "eta" not in r or (t, s, "kl") not in runs:
                continue
            sc = der["eta_scores"].get(f"{t}|{s}|{m}")
            if not sc or "error" in sc:
                continue
            rows.append((sc, 100 * (r["accuracy"] - runs[(t, s, "kl")]["accuracy"]), m))
        if len(rows) < 4:
            continue
        cols = []
        for k in pts:
            x = [r[0][k] for r in rows]
            y = [r[1] for r in rows]
            rho = stats.spearmanr(x, y)[0]
            cols.append(f"{rho:+.2f}")
            pts[k] += [(xx, yy, t) for xx, yy in zip(x, y)]
        lines.append(f"| {t} | {len(rows)} | " + " | ".join(cols) + " |")
        x = np.array([r[0]["deviation"] for r in rows])
        y = np.array([r[1] for r in rows])
        axes[0].scatter(x, y, s=10, color=cmap(i), alpha=0.7, label=t)
        x2 = np.array([r[0]["proxy_val_mse_to_p_star"] for r in rows])
        axes[1].scatter(x2, y, s=10, color=cmap(i), alpha=0.7, label=t)
    for k in pts:
        if len(pts[k]) > 3:
            rho, p = stats.spearmanr([a for a, _, _ in pts[k]], [b for _, b, _ in pts[k]])
            lines.append(f"\nPooled, {k}: Spearman ρ = {rho:+.2f} (p = {p_str(p)}, {len(pts[k])} runs).")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("D (Eq. 21) of the run's eta on validation")
    axes[0].set_ylabel("student acc. − KL student acc. (points)")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("proxy teacher MSE to p* (validation)")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Does the search criterion track the student? (every PTLoss run)")
    fig.tight_layout()
    fig.savefig(os.path.join(FIG, "deviation_vs_student.png"), dpi=110)
    plt.close(fig)
    return lines


def section_grid(runs):
    families = common.FAMILIES
    lines = ["### Baseline grids (seed 0 only; validation accuracy % / test accuracy %)", "",
             "| teacher | " + " | ".join(label(f"{f}:{v:g}") for f, g in families.items() for v in g) + " |",
             "|---|" + "---|" * sum(len(g) for g in families.values())]
    for t in TEACHERS:
        cols = []
        for f, g in families.items():
            for v in g:
                r = runs.get((t, 0, f"{f}:{v:g}"))
                cols.append(f"{100 * r['val_accuracy']:.1f}/{100 * r['accuracy']:.1f}" if r else "-")
        lines.append(f"| {t} | " + " | ".join(cols) + " |")
    return lines


def section_bookkeeping(runs):
    secs = [r["seconds"] for r in runs.values()]
    fin = sorted(r["finished_utc"] for r in runs.values())
    by = {}
    for (t, s, m) in runs:
        kind = label(m).split(":")[0]
        by[kind] = by.get(kind, 0) + 1
    lines = ["### Bookkeeping", "",
             f"- {len(runs)} trainings saved (" + ", ".join(f"{k}: {v}" for k, v in sorted(by.items())) + ").",
             f"- Sum of per-run wall times {sum(secs) / 60:.1f} min (median {np.median(secs):.1f} s per run incl. evaluation); "
             f"first run finished {fin[0] if fin else '-'}, last {fin[-1] if fin else '-'} (UTC).",
             f"- Hosts: {sorted(set(r.get('host', '?') for r in runs.values()))}.",
             f"- Report generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python experiments/report.py`."]
    diverged = [(t, s, label(m)) for (t, s, m), r in runs.items() if r.get("diverged")]
    if diverged:
        lines.append(f"- Non-finite final training loss in {len(diverged)} runs: {diverged[:10]}")
    errs = glob.glob(os.path.join(common.RUNS_DIR, "*.error"))
    if errs:
        lines.append(f"- {len(errs)} runs failed with an error (files `*.error` in experiments/results/trainings/).")
    return lines


def main():
    os.makedirs(FIG, exist_ok=True)
    all_runs = load_runs()
    # The sections of the original study read its methods only; the
    # recalibration section reads the calibrated ones (and the bookkeeping all).
    runs = {k: r for k, r in all_runs.items()
            if not common.parse_method(k[2])[0].endswith("_calibrated")}
    search = load_search()
    der = derived(runs)
    sel = selected_baselines(runs)
    calibrations, search_cal = load_calibrations(), load_search_calibrated()
    body = []
    for sec in (lambda: section_headline(runs, sel), lambda: section_teachers(der, search), lambda: section_criterion_proxy(search),
                lambda: section_recalibration(all_runs, search, calibrations, search_cal),
                lambda: section_core(runs, sel), lambda: section_tests(runs, sel),
                lambda: section_orders(runs), lambda: section_tvd(runs, der),
                lambda: section_deviation(runs, der), lambda: section_grid(runs),
                lambda: section_bookkeeping(all_runs)):
        body += sec() + [""]
    head = open(HEAD).read() if os.path.exists(HEAD) else "# Results\n"
    tail = open(TAIL).read() if os.path.exists(TAIL) else ""
    text = (head.rstrip() + "\n\n<!-- GENERATED by experiments/report.py: do not edit by hand -->\n\n"
            + "\n".join(body) + "\n<!-- END GENERATED -->\n\n" + tail)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({len(runs)} runs) and figures in {FIG}")


if __name__ == "__main__":
    main()
