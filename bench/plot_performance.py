"""Figure for docs/PERFORMANCE.md from the JSON results in bench/results/.

    .venv/bin/python bench/plot_performance.py [--out docs/figures/performance.png]

Panels: (a) PTLoss / KL cost, loss alone (bench_loss.py, graph mode);
(b) Proxy Teacher search speed-up over per-example scipy (bench_solver.py);
(c) serving latency, SavedModel vs Keras (bench_export.py).
"""

import argparse
import json
import os

import _common

RESULTS = _common.RESULTS_DIR


def _load(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(_common.REPO_ROOT, "docs", "figures",
                                                      "performance.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    loss = _load("loss.json")
    if loss:
        rows = [r for r in loss["results"] if r["mode"] == "graph" and r["loss"] != "KL"]
        cases = sorted({(r["batch_size"], r["num_classes"]) for r in rows})
        orders = sorted({r["order"] for r in rows})
        width = 0.8 / len(orders)
        for i, m in enumerate(orders):
            values = [next(r["ratio_to_kl"] for r in rows if (r["batch_size"], r["num_classes"]) == c
                           and r["order"] == m) for c in cases]
            axes[0].bar(np.arange(len(cases)) + i * width, values, width, label=f"M={m}")
        axes[0].axhline(loss.get("target", 1.3) if isinstance(loss.get("target"), float) else 1.3,
                        color="k", ls="--", lw=1, label="target 1.3x")
        axes[0].axhline(1.0, color="gray", lw=0.8)
        axes[0].set_xticks(np.arange(len(cases)) + 0.4 - width / 2,
                           [f"B={b}\nK={k}" for b, k in cases])
        axes[0].set(ylabel="time / KL time", title="(a) loss alone, fwd+bwd, XLA:CPU")
        axes[0].legend(fontsize=8)
    solver = _load("solver.json")
    if solver:
        rows = solver["results"]
        labels = [f"K={r['num_classes']}" for r in rows]
        axes[1].bar(labels, [r["speedup_vs_proxy_warm"] for r in rows], color="tab:green")
        axes[1].axhline(1000, color="k", ls="--", lw=1, label="target 1000x")
        axes[1].set_yscale("log")
        axes[1].set_ylim(100, 10000)
        axes[1].set(ylabel="speed-up over scipy SLSQP per example",
                    title="(b) proxy teacher, N=10k x S=100, M=5")
        axes[1].legend(fontsize=8)
    export = _load("export.json")
    if export:
        res = export["results"]
        paths = [("predict", "Keras predict\n(token ids)"),
                 ("predict_on_batch", "Keras predict_on_batch\n(token ids)"),
                 ("predict_token_ids", "SavedModel\ntoken ids"),
                 ("serving_default", "SavedModel\nraw text")]
        for i, b in enumerate((1, 64)):
            axes[2].bar(np.arange(len(paths)) + i * 0.4,
                        [res[f"{key}/{b}"]["median_ms"] for key, _ in paths], 0.4,
                        label=f"batch {b}")
        axes[2].set_yscale("log")
        axes[2].set_xticks(np.arange(len(paths)) + 0.2, [label for _, label in paths], fontsize=7)
        axes[2].set(ylabel="median latency per call (ms)",
                    title=f"(c) serving, {export['student'].split(',')[0]}")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
