"""The support-identifiability certificate on boxes whose answer is known by hand, and on the grid."""

import numpy as np
import pytest

from mdcrl.data.mixing import sample_spurious_latent_boxes
from mdcrl.identifiability import support_identifiable, support_identifiable_for, support_invariant_direction


def test_a_coordinate_with_the_same_box_everywhere_is_an_invariant_direction():
    boxes = np.array([[[0.0, 1.0], [0.0, 2.0]], [[0.0, 1.0], [1.0, 3.0]], [[0.0, 1.0], [-2.0, 0.5]]])
    c = support_invariant_direction(boxes)
    assert c is not None
    assert abs(abs(c[0]) - 1.0) < 1e-6 and abs(c[1]) < 1e-6
    assert not support_identifiable(boxes)


def test_one_spurious_coordinate_whose_box_moves_is_identifiable():
    assert support_identifiable(np.array([[[0.0, 1.0]], [[0.5, 2.0]]]))


def test_boxes_shifting_in_opposite_directions_cancel():
    # z1 shifts by +0.5 and z2 by -0.5 from domain 0 to 1: z1 + z2 keeps its support [0, 2].
    boxes = np.array([[[0.0, 1.0], [0.0, 1.0]], [[0.5, 1.5], [-0.5, 0.5]]])
    c = support_invariant_direction(boxes)
    assert c is not None and np.allclose(np.abs(c), 0.5, atol=1e-6) and np.sign(c[0]) == np.sign(c[1])
    low = [sum(min(cj * lo, cj * hi) for cj, (lo, hi) in zip(c, domain)) for domain in boxes]
    high = [sum(max(cj * lo, cj * hi) for cj, (lo, hi) in zip(c, domain)) for domain in boxes]
    assert np.allclose(low, low[0], atol=1e-6) and np.allclose(high, high[0], atol=1e-6)


@pytest.mark.parametrize(
    "z_dim, num_domains, certified",
    [(8, 2, 1), (8, 4, 5), (16, 8, 5), (16, 4, 1), (32, 8, 3), (32, 16, 5), (64, 8, 0)],
)
def test_the_seed_grid_boxes(z_dim, num_domains, certified):
    # Counts over the seed commands' five seeds, as measured in the issue that asked for the certificate.
    count = 0
    for seed in (1235, 4256, 49685, 7383, 9271):
        boxes = sample_spurious_latent_boxes(np.random.default_rng(seed), num_domains, z_dim - z_dim // 2, [-5.0, 5.0])
        count += support_identifiable(boxes)
    assert count == certified


def test_the_certificate_applies_only_to_linear_mixing_with_the_independent_scm():
    boxes = [[[0.0, 1.0]], [[0.5, 2.0]]]
    base = {"kind": "mixing", "linear": True, "correlated_z": False, "domain_boxes": boxes}
    assert support_identifiable_for(base) is True
    assert support_identifiable_for({**base, "correlated_z": True}) is None
    assert support_identifiable_for({**base, "linear": False}) is None
    assert support_identifiable_for({"kind": "table"}) is None
