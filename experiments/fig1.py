"""Fig. 1a / 1b of the paper, reproduced from the library (no training).

    python -m experiments.fig1      # writes docs/figures/fig1a_ptloss_order1.png, fig1b_ptloss_orders.png
                                    # (or: python experiments/fig1.py)

Fig. 1a: the order-1 PTLoss with eps = gamma = 1 (binary), as a function of the
student probability of class 0, for several teachers p^t; the crosses are the
minimisers given by `ptloss_tf.proxy_teacher` (MATH.md Sec. 2), i.e. the
student the loss trains towards. The loss values come from `ptloss_tf.PTLoss`
(probabilities in, reduction "none"); KL (dashed) for comparison.

Fig. 1b: orders M = 1..10 with every coefficient 2 (paper: "we set all the
perturbation coefficients as 2"). Left: the loss curves at p^t = (0.1, 0.9)
with their minimisers; right: the optimal student p^PT_0 against the
teacher's p^t_0 (KL = the identity line, "total imitation").
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "docs", "figures")


def loss_curve(loss, p0, q0):
    p = np.tile([[p0, 1 - p0]], (len(q0), 1)).astype(np.float32)
    q = np.stack([q0, 1 - q0], 1).astype(np.float32)
    return np.asarray(loss(p, q), dtype=np.float64)


def main():
    import ptloss_tf

    os.makedirs(FIG_DIR, exist_ok=True)
    q0 = np.linspace(0.002, 0.998, 999)
    # --- Fig. 1a
    eta1 = ptloss_tf.Coefficients(np.ones((1, 2)))
    pt = ptloss_tf.PTLoss(eta1, from_logits=False, reduction="none")
    kl = ptloss_tf.KLDivergence(from_logits=False, reduction="none")
    teachers = [0.1, 0.3, 0.5, 0.7, 0.9]
    opt = np.asarray(ptloss_tf.proxy_teacher(np.array([[p, 1 - p] for p in teachers]), eta1))
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(teachers)))
    for p0, c, o in zip(teachers, colors, opt[:, 0]):
        y = loss_curve(pt, p0, q0)
        ax.plot(q0, y, color=c, label=f"PT-1, $p^t$=({p0:.1f}, {1 - p0:.1f})")
        ax.plot(q0, loss_curve(kl, p0, q0), color=c, ls="--", lw=0.8, alpha=0.6)
        yo = loss_curve(pt, p0, np.array([o]))[0]
        ax.plot([o], [yo], "kx", ms=9, mew=2)
        ax.axvline(p0, color=c, ls=":", lw=0.6)
    ax.set_ylim(-0.2, 4)
    ax.set_xlabel("student probability of class 0, $p^s_0$")
    ax.set_ylabel("loss")
    ax.set_title("Fig. 1a: order-1 PTLoss, $\\epsilon_1=\\gamma_1=1$ (dashed: KL)\n"
                 "x = minimiser from ptloss_tf.proxy_teacher; dotted: $p^t_0$")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(FIG_DIR, "fig1a_ptloss_order1.png"), dpi=120)
    plt.close(fig)
    print("Fig. 1a minimisers (p^t_0 -> p^PT_0):",
          {p: round(float(o), 4) for p, o in zip(teachers, opt[:, 0])})
    # --- Fig. 1b
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.4))
    orders = range(1, 11)
    colors = plt.cm.plasma(np.linspace(0, 0.9, 10))
    grid = np.linspace(0.01, 0.99, 99)
    a1.plot(q0, loss_curve(kl, 0.1, q0), "k--", label="KL")
    a2.plot(grid, grid, "k--", label="KL (identity)")
    table = {}
    for m, c in zip(orders, colors):
        eta = ptloss_tf.Coefficients(np.full((m, 2), 2.0))
        loss = ptloss_tf.PTLoss(eta, from_logits=False, reduction="none")
        y = loss_curve(loss, 0.1, q0)
        o = float(np.asarray(ptloss_tf.proxy_teacher(np.array([[0.1, 0.9]]), eta))[0, 0])
        table[m] = round(o, 4)
        a1.plot(q0, y, color=c, label=f"M={m}")
        a1.plot([o], [loss_curve(loss, 0.1, np.array([o]))[0]], "x", color="k", ms=7, mew=1.5)
        curve = np.asarray(ptloss_tf.proxy_teacher(np.stack([grid, 1 - grid], 1), eta))[:, 0]
        a2.plot(grid, curve, color=c, label=f"M={m}")
    a1.set_ylim(-0.5, 8)
    a1.axvline(0.1, color="grey", ls=":", lw=0.8)
    a1.set_xlabel("student probability of class 0, $p^s_0$")
    a1.set_ylabel("loss")
    a1.set_title("PTLoss orders 1..10, all $\\eta=2$, $p^t$=(0.1, 0.9)\nx = proxy_teacher minimiser")
    a1.legend(fontsize=7, ncol=2)
    a2.set_xlabel("teacher $p^t_0$")
    a2.set_ylabel("optimal student $p^{PT}_0$ (proxy_teacher)")
    a2.set_title("Fig. 1b: where each loss sends the student")
    a2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(FIG_DIR, "fig1b_ptloss_orders.png"), dpi=120)
    plt.close(fig)
    print("Fig. 1b minimisers at p^t=(0.1,0.9), by order:", table)


if __name__ == "__main__":
    main()
