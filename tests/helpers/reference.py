"""Independent numpy/scipy reference implementations used as golden values.

Nothing here imports ptloss_tf: these are written from MATH.md directly.
"""

import numpy as np
from scipy import optimize
from scipy.special import log_softmax
from scipy.special import xlogy


def ptloss_numpy(p, logits, eta, temperature=1.0):
    """MATH.md Sec. 1, per example: KL(p||q) + sum_k p_k sum_m eta[m,k](1-q_k)^m."""
    p = np.asarray(p, np.float64)
    log_q = log_softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
    if temperature != 1.0:
        with np.errstate(divide="ignore"):
            p = np.exp(log_softmax(np.log(p) / temperature, axis=-1))
    q = np.exp(log_q)
    kl = np.sum(xlogy(p, p) - p * log_q, axis=-1)
    eta = np.asarray(eta, np.float64)
    pert = 0.0
    for m in range(1, eta.shape[0] + 1):
        pert = pert + np.sum(p * eta[m - 1] * (1.0 - q) ** m, axis=-1)
    return (kl + pert) * temperature**2


def proxy_objective(q, p, eta):
    """sum_k p_k [-log q_k + sum_m eta[m,k] (1-q_k)^m]  (0 * log 0 = 0)."""
    q = np.asarray(q, np.float64)
    total = -np.sum(xlogy(p, q))
    for m in range(1, eta.shape[0] + 1):
        total += np.sum(p * eta[m - 1] * (1.0 - q) ** m)
    return total


def proxy_teacher_kkt(p, eta):
    """Convex-box proxy teacher by nested root finding on the KKT conditions.

    p_k (1/q_k + sum_m m eta[m,k] (1-q_k)^(m-1)) = lam for p_k > 0; q_k = 0
    for p_k = 0; sum_k q_k = 1. Inner: brentq in q_k; outer: brentq in lam.
    """
    p = np.asarray(p, np.float64)
    eta = np.asarray(eta, np.float64)
    orders = np.arange(1, eta.shape[0] + 1)
    active = np.flatnonzero(p > 0)

    def g(k, qk):
        return 1.0 / qk + np.sum(orders * eta[:, k] * (1.0 - qk) ** (orders - 1))

    def q_of_lam(k, lam):
        target = lam / p[k]
        if g(k, 1.0) >= target:
            return 1.0
        return optimize.brentq(
            lambda x: g(k, x) - target, 1e-300, 1.0, xtol=1e-300, rtol=1e-15,
            maxiter=500,
        )

    if len(active) == 1:
        out = np.zeros_like(p)
        out[active[0]] = 1.0
        return out

    def total(lam):
        return sum(q_of_lam(k, lam) for k in active) - 1.0

    low = max(p[k] * g(k, 1.0) for k in active)
    high = max(p[k] * g(k, 1.0 / len(p)) for k in active) * 1.0000001 + 1e-12
    lam = optimize.brentq(total, low, high, xtol=1e-300, rtol=1e-15, maxiter=500)
    out = np.zeros_like(p)
    for k in active:
        out[k] = q_of_lam(k, lam)
    return out


def binary_global_minimiser(p0, eta):
    """Binary proxy teacher for any eta: dense grid + bounded local refinement."""
    p = np.array([p0, 1.0 - p0])

    def f(q0):
        return proxy_objective(np.array([q0, 1.0 - q0]), p, eta)

    grid0 = np.concatenate(
        [[0.0], 1.0 / (1.0 + np.exp(-np.linspace(-40, 40, 20001))), [1.0]]
    )
    grid = np.stack([grid0, 1.0 - grid0], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = -xlogy(p, grid).sum(axis=1)
        for m in range(1, eta.shape[0] + 1):
            values += (p * eta[m - 1] * (1.0 - grid) ** m).sum(axis=1)
    values = np.where(np.isnan(values), np.inf, values)
    grid = grid0
    best_q, best_v = grid[np.argmin(values)], values.min()
    for i in np.argsort(values)[:6]:
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        if b <= a:
            continue
        r = optimize.minimize_scalar(
            f, bounds=(a, b), method="bounded", options={"xatol": 1e-14}
        )
        if r.fun < best_v:
            best_q, best_v = r.x, r.fun
    return best_q, best_v
