"""Runs the synthetic PTLoss study, resumably (one JSON per run, atomic writes).

    nice -n 10 python -m experiments.study --phases search core criterion orders grid selected \
        [--worker 0 --workers 2] [--seeds 0 1 2 3 4] [--deadline 2026-11-28T04:00]

(from the repository root; `python experiments/study.py ...` works too.)

Phases, in the order of priority (each skips runs already saved under
experiments/results/trainings/ and experiments/results/search/):

  search     proxy-teacher searches (orders 1..5, every teacher and seed): no training.
  core       KL, PTLoss proxy (Eq. 21 "deviation", M=5), PTLoss random (M=5):
             every teacher x seed.
  criterion  PTLoss proxy with the `brier` and `nll` criteria (M=5): every teacher x seed.
  orders     PTLoss proxy (deviation) and random at M=1..4 on common.ORDER_TEACHERS x seeds.
  grid       every value of the paper's temperature / smoothing / focal grids,
             every teacher, seed 0 only (selection on validation accuracy).
  calibration  the teacher recalibrated on the validation split (temperature,
             bias, vector scaling): no training, every teacher and seed.
  calibrated   KL to each recalibrated teacher, and PTLoss (brier, M=5) on the
             vector-scaled teacher: every teacher x seed.
  selected   for each teacher and family, the grid value with the best seed-0
             validation accuracy, on the remaining seeds: first the single best
             value over all families (the "best baseline"), then the other two.
             `selected_best` / `selected_rest` are those two halves.

`--worker i --workers n` runs the i-th of n disjoint shares of each phase (so
two processes can share the work). `--deadline` stops starting new runs after
that UTC time.
"""
import argparse
import datetime as dt
import os
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__:  # python -m experiments.study
    from . import common
else:  # python experiments/study.py: this folder is sys.path[0]
    import common

SEEDS = (0, 1, 2, 3, 4)


def selected_methods(teacher):
    """Per family, the grid value with the best seed-0 validation accuracy
    (ties: the smaller validation KL to p* is NOT used - only labels are; ties
    broken by grid order). None if the seed-0 grid is incomplete."""
    out = []
    for fam, grid in common.FAMILIES.items():
        best, best_acc = None, -1.0
        for v in grid:
            m = f"{fam}:{v:g}"
            p = common.run_path(teacher, 0, m)
            if not os.path.exists(p):
                return None
            r = common.read_run(p)
            if r["val_accuracy"] > best_acc:
                best, best_acc = m, r["val_accuracy"]
        out.append(best)
    return out


def best_grid_method(teacher):
    """The single grid value (any family) with the best seed-0 validation
    accuracy: the study's "best baseline" for `teacher` (None if incomplete)."""
    sel = selected_methods(teacher)
    if not sel:
        return None
    accs = []
    for m in sel:
        accs.append((common.read_run(common.run_path(teacher, 0, m))["val_accuracy"],
                     -sel.index(m), m))
    return max(accs)[2]


def plan(phase, seeds):
    teachers = list(common.TEACHERS)
    if phase == "search":
        return [("search", t, s, o) for s in seeds for t in teachers for o in (5, 1, 2, 3, 4)]
    if phase == "core":
        return [("train", t, s, m) for s in seeds for t in teachers
                for m in ("kl", "ptloss:deviation:5", "ptloss_random:5")]
    if phase == "criterion":
        return [("train", t, s, m) for s in seeds for t in teachers
                for m in ("ptloss:brier:5", "ptloss:nll:5")]
    if phase == "orders":
        return [("train", t, s, m) for s in seeds for t in common.ORDER_TEACHERS
                for o in (1, 2, 3, 4) for m in (f"ptloss:deviation:{o}", f"ptloss_random:{o}")]
    if phase == "calibration":
        return [("calibration", t, s, c) for s in seeds for t in teachers
                for c in common.CALIBRATIONS]
    if phase == "calibrated":
        # method-major: kl_calibrated shares kl's traced step, ptloss_calibrated ptloss's
        return [("train", t, s, m) for m in [f"kl_calibrated:{c}" for c in common.CALIBRATIONS]
                + ["ptloss_calibrated:vector:brier:5"] for s in seeds for t in teachers]
    if phase == "grid":
        # method-major: one traced training step per grid value
        return [("train", t, 0, m) for m in common.grid_methods() for t in teachers]
    if phase in ("selected_best", "selected_rest"):
        items = plan("selected", seeds)
        n_best = sum(1 for t in teachers if selected_methods(t)) * sum(1 for s in seeds if s != 0)
        return items[:n_best] if phase == "selected_best" else items[n_best:]
    if phase == "selected":
        # First the overall best baseline of every teacher, then the other
        # two families' selected values; each group method-major (one traced
        # training step per method).
        first, rest = [], []
        for t in teachers:
            sel = selected_methods(t)
            if sel:
                best = best_grid_method(t)
                first += [("train", t, s, best) for s in seeds if s != 0]
                rest += [("train", t, s, m) for m in sel if m != best for s in seeds if s != 0]
        key = lambda it: (it[3], it[1], it[2])  # noqa: E731
        return sorted(first, key=key) + sorted(rest, key=key)
    raise ValueError(phase)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", nargs="+",
                    default=["search", "core", "criterion", "orders", "grid", "selected"])
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--reverse", action="store_true",
                    help="walk each phase's items from the end (a second process)")
    ap.add_argument("--deadline", default=None, help="UTC, e.g. 2026-11-28T04:00")
    args = ap.parse_args()
    deadline = (dt.datetime.fromisoformat(args.deadline).replace(tzinfo=dt.timezone.utc)
                if args.deadline else None)
    t_start = time.time()
    done = 0
    for phase in args.phases:
        items = [it for it in plan(phase, args.seeds)
                 if zlib.crc32(repr(it).encode()) % args.workers == args.worker]
        if args.reverse:
            items = items[::-1]
        print(f"[{time.strftime('%H:%M:%S')}] phase {phase}: {len(items)} items "
              f"(worker {args.worker}/{args.workers})", flush=True)
        for i, (kind, t, s, m) in enumerate(items):
            if deadline and dt.datetime.now(dt.timezone.utc) > deadline:
                print("deadline reached; stopping", flush=True)
                return
            if kind == "calibration":
                _, record = common.calibration(t, s, m)
                print(f"  calibration {t} s{s} {m}: {record['fit_seconds']:.2f}s", flush=True)
                continue
            if kind == "search":
                path = os.path.join(common.SEARCH_DIR, f"{t}__s{s}__M{m}.json")
                if os.path.exists(path):
                    continue
                r = common.search(t, s, m)
                print(f"  search {t} s{s} M{m}: {r['search_seconds']:.1f}s", flush=True)
                continue
            if os.path.exists(common.run_path(t, s, m)):
                continue
            t0 = time.time()
            try:
                r = common.train_one(t, s, m)
            except Exception as e:  # noqa: BLE001 - record and go on
                print(f"  FAILED {t} s{s} {m}: {e!r}", flush=True)
                common.atomic_write_json(common.run_path(t, s, m).replace(".json", ".error"),
                                         {"error": repr(e)})
                continue
            done += 1
            print(f"  [{phase} {i + 1}/{len(items)}] {t} s{s} {m}: acc {r['accuracy']:.4f} "
                  f"kl* {r['kl_to_p_star']:.4f} ({time.time() - t0:.1f}s; "
                  f"{done} runs in {(time.time() - t_start) / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
