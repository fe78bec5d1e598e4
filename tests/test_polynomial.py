import itertools

import numpy as np
import torch
from conftest import ROOT
from naive_polynomial import kronecker_features, kronecker_index_tuples, naive_polynomial_decoder
from omegaconf import OmegaConf

from mdcrl.data.mixing import generate_mixing_data
from mdcrl.data.polynomial import monomial_features, monomial_plan, num_monomials
from mdcrl.models.autoencoders import PolynomialDecoder


def distinct_order(z_dim, degree):
    """Index tuples of our feature columns, in order (constant first)."""
    out = [()]
    for q in range(1, degree + 1):
        out += list(itertools.combinations_with_replacement(range(z_dim), q))
    return out


def test_feature_count_is_distinct_monomials():
    assert num_monomials(14, 3) == 680
    z = np.random.default_rng(0).normal(size=(5, 14))
    assert monomial_features(z, monomial_plan(14, 3)).shape == (5, 680)


def test_features_are_the_distinct_kronecker_columns():
    z = np.random.default_rng(1).normal(size=(7, 4))
    ours = monomial_features(z, monomial_plan(4, 3))
    tuples = kronecker_index_tuples(4, 3)
    column = {t: i for i, t in enumerate(distinct_order(4, 3))}
    for n in range(len(z)):
        kron = kronecker_features(z[n], 3)
        for j, t in enumerate(tuples):
            assert np.isclose(kron[j], ours[n, column[tuple(sorted(t))]])


def test_decoder_matches_per_sample_kronecker_loop():
    torch.manual_seed(0)
    dec = PolynomialDecoder(z_dim=3, x_dim=5, degree=3).double()
    z = torch.randn(6, 3, dtype=torch.float64)
    column = {t: i for i, t in enumerate(distinct_order(3, 3)[1:])}
    # The decoder's linear layer is stacked over restarts: weight (1, in, out), bias (1, 1, out).
    expected = naive_polynomial_decoder(z, dec.linear.weight[0].T, dec.linear.bias[0, 0], 3, column)
    assert torch.allclose(dec(z)[0], expected, atol=1e-10)


def _poly_cfg(**kw):
    cfg = OmegaConf.load(ROOT / "configs" / "datamodule" / "mixing.yaml").dataset
    cfg.update(dict(linear=False, z_dim=4, x_dim=12, polynomial_degree=3, num_domains=4), **kw)
    return cfg


def test_polynomial_mixing_is_one_function_for_all_splits():
    data = generate_mixing_data(_poly_cfg(), seed=3)
    plan = monomial_plan(4, 3)
    train, test = data.splits["train"], data.splits["test"]
    # x is exactly linear in the monomials of z, with the same coefficients in train and test.
    coef, *_ = np.linalg.lstsq(monomial_features(train.z.astype(np.float64), plan), train.x, rcond=None)
    residual = test.x - monomial_features(test.z.astype(np.float64), plan) @ coef
    assert np.abs(residual).max() < 1e-3
    assert np.allclose(train.x.mean(0), 0, atol=1e-4) and np.allclose(train.x.std(0), 1, atol=1e-3)
    again = generate_mixing_data(_poly_cfg(), seed=3)
    assert np.array_equal(again.splits["valid"].x, data.splits["valid"].x)
