import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from mdcrl.metrics import linear_r2


@pytest.mark.parametrize("n, p, q", [(500, 4, 3), (300, 8, 1), (50, 2, 5)])
def test_linear_r2_equals_scikit_learn(n, p, q):
    rng = np.random.default_rng(n)
    x, x_test = rng.normal(size=(n, p)), rng.normal(size=(n, p))
    w = rng.normal(size=(p, q))
    y, y_test = x @ w + rng.normal(size=(n, q)), x_test @ w + 0.5 * rng.normal(size=(n, q))
    expected = r2_score(y_test, LinearRegression().fit(x, y).predict(x_test))
    assert linear_r2(x, y, x_test, y_test) == pytest.approx(expected, abs=1e-10)


def test_linear_r2_constant_target_follows_scikit_learn():
    x = np.arange(20.0)[:, None]
    y = np.ones((20, 1))
    assert linear_r2(x, y, x, y) == 1.0
    assert linear_r2(x, y, x, y + 1.0) == 0.0


def _blocks(rng, n=6000, k=5, gaussian=False):
    d = rng.integers(0, k, n)
    draw = rng.normal if gaussian else rng.uniform
    z_s = draw(size=(n, 3))
    z_u = draw(size=(n, 3)) * (1 + d[:, None]) + d[:, None]  # shifts and stretches with the domain
    return z_s, z_u, d


@pytest.mark.parametrize("gaussian", [False, True])
def test_verdict_passes_separated_blocks(gaussian):
    from mdcrl.metrics import stability_diagnostics

    z_s, z_u, d = _blocks(np.random.default_rng(0), gaussian=gaussian)
    diag = stability_diagnostics(np.c_[z_s, z_u], d, 3)
    assert diag["verdict"] == "invariant"
    if gaussian:  # the extremes of unbounded latents move by chance: the support spreads alone must not flag
        assert diag["stable_max_spread"] > 0.5


@pytest.mark.parametrize("leak", [1.0, 0.3])
def test_verdict_flags_a_stable_block_that_carries_the_domain(leak):
    from mdcrl.metrics import stability_diagnostics

    rng = np.random.default_rng(1)
    z_s, z_u, d = _blocks(rng)
    mixed = z_s + leak * z_u @ rng.normal(size=(3, 3))
    diag = stability_diagnostics(np.c_[mixed, z_u], d, 3)
    assert diag["verdict"].startswith("not invariant: ")
    assert "domain is predictable from h_S" in diag["verdict"] or "variance differs" in diag["verdict"]
