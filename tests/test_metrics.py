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
