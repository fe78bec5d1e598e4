"""When can support matching recover the stable block? A certificate from the true domain boxes.

Linear mixing, independent SCM: the learned stable latents are h_S = A z_S + B z_U. In domain i the
support of a coordinate a.z_S + c.z_U is the Minkowski sum of the (domain-independent) support of
a.z_S and the support of c.z_U, which for box supports [l_ij, u_ij] is

    [ sum_j min(c_j l_ij, c_j u_ij),  sum_j max(c_j l_ij, c_j u_ij) ].

Min-max support matching therefore cannot tell z_S from a mixture with z_U exactly when some
nonzero c gives c.z_U the same support in every domain. Writing c = p - m with p, m >= 0 and a
binary sign s_j per coordinate (p_j <= s_j, m_j <= 1 - s_j), normalised by sum(p + m) = 1, the
lower and upper ends are linear in (p, m):

    low_i(c) = sum_j p_j l_ij - m_j u_ij,    high_i(c) = sum_j p_j u_ij - m_j l_ij,

and "the same support in all domains" is the 2(k - 1) equalities low_i = low_0, high_i = high_0.
This mixed-integer feasibility problem is solved with scipy.optimize.milp. Feasible = a spurious
direction survives support matching = NOT identifiable by support.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

# Equalities are met to this tolerance, relative to the size of the boxes.
TOLERANCE = 1e-7


def support_invariant_direction(boxes: np.ndarray) -> np.ndarray | None:
    """A direction c (sum |c_j| = 1) whose c.z_U has the same support in every domain, or None.

    ``boxes``: (num_domains, d_U, 2) with [low, high] per domain and spurious coordinate.
    """
    boxes = np.asarray(boxes, dtype=float)
    if boxes.ndim != 3 or boxes.shape[2] != 2:
        raise ValueError(f"boxes must have shape (num_domains, d_U, 2), got {boxes.shape}")
    k, d_u, _ = boxes.shape
    if d_u == 0:
        return None
    low, high = boxes[..., 0], boxes[..., 1]
    # Variables: [p (d_U), m (d_U), s (d_U)]; the rows use d_U columns each.
    ends_low = np.hstack([low, -high, np.zeros((k, d_u))])  # low_i = ends_low[i] @ v
    ends_high = np.hstack([high, -low, np.zeros((k, d_u))])
    scale = max(float(np.abs(boxes).max()), 1.0)
    rows, lo, hi = [], [], []
    tol = TOLERANCE * scale
    for ends in (ends_low, ends_high):
        for i in range(1, k):
            rows.append(ends[i] - ends[0])
            lo.append(-tol)
            hi.append(tol)
    eye, zero = np.eye(d_u), np.zeros((d_u, d_u))
    rows += list(np.hstack([eye, zero, -eye]))  # p_j - s_j <= 0
    lo += [-np.inf] * d_u
    hi += [0.0] * d_u
    rows += list(np.hstack([zero, eye, eye]))  # m_j + s_j <= 1
    lo += [-np.inf] * d_u
    hi += [1.0] * d_u
    rows.append(np.concatenate([np.ones(2 * d_u), np.zeros(d_u)]))  # sum(p + m) = 1
    lo.append(1.0)
    hi.append(1.0)
    result = milp(
        c=np.zeros(3 * d_u),
        constraints=LinearConstraint(np.array(rows), lo, hi),
        integrality=np.concatenate([np.zeros(2 * d_u), np.ones(d_u)]),
        bounds=Bounds(0.0, 1.0),
    )
    if result.status != 0 or result.x is None:  # 2 = infeasible; anything else would be a solver failure
        if result.status not in (0, 2):
            raise RuntimeError(f"scipy.optimize.milp could not decide support identifiability: {result.message}")
        return None
    p, m = result.x[:d_u], result.x[d_u : 2 * d_u]
    return p - m


def support_identifiable(boxes: np.ndarray) -> bool:
    """True when no nonzero combination of the spurious latents has a domain-invariant support, so
    that min-max support matching identifies z_S (linear mixing, independent SCM)."""
    return support_invariant_direction(boxes) is None


def support_identifiable_for(metadata: dict) -> bool | None:
    """The certificate for a generated dataset (its metadata): None where it does not apply (not
    linear mixing, or the dynamic SCM, which mixes z_S into z_U)."""
    boxes = metadata.get("domain_boxes")
    if metadata.get("kind") != "mixing" or not metadata.get("linear") or metadata.get("correlated_z", True):
        return None
    return support_identifiable(np.asarray(boxes))
