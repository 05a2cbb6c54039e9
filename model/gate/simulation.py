"""Synthetic paired scores with known AUCs, for calibrating the gate by simulation.

Binormal and calibrated: within each class a model's latent score is x ~ N(mu·y, 1), the two
models' latents are correlated within class by ``rho``, and each returned score is the true
posterior P(y = 1 | x) at the sample's class balance — so neither model is miscalibrated
unless a caller makes it so. AUC = Phi(mu / sqrt 2). Class counts are exact.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def binormal_scores(
    rng: np.random.Generator, n_pos: int, n_neg: int, auc_b: float, auc_c: float, rho: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, baseline_scores, candidate_scores)`` with true AUCs ``auc_b`` and ``auc_c``."""
    y = np.r_[np.ones(n_pos, np.int8), np.zeros(n_neg, np.int8)]
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=y.size)
    prior = np.log(n_pos / n_neg)
    out = []
    for j, auc in enumerate((auc_b, auc_c)):
        mu = np.sqrt(2) * stats.norm.ppf(auc)
        x = z[:, j] + mu * y
        out.append(1 / (1 + np.exp(-(mu * x - mu * mu / 2 + prior))))
    return y, out[0], out[1]


def posterior(x: np.ndarray, auc: float) -> np.ndarray:
    """The calibrated score of latent ``x`` for a binormal model of AUC ``auc`` (balanced)."""
    mu = np.sqrt(2) * stats.norm.ppf(auc)
    return 1 / (1 + np.exp(-(mu * x - mu * mu / 2)))
