import pytest
import torch
from naive_penalties import (
    naive_domain_covariances_penalty,
    naive_domain_means_penalty,
    naive_hinge_loss,
    naive_minmax_penalty,
    naive_mmd_penalty,
    naive_reference_mmd,
    naive_stddev_penalty,
)

from mdcrl import penalties as P


def _batch(n=200, d=3, k=4, seed=0, counts=None):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=torch.float64) * 2 + 0.5
    if counts is None:
        domains = torch.randint(0, k, (n,), generator=g)
    else:
        domains = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
        h = h[: len(domains)]
    return h, domains


CASES = {
    "random": dict(n=200, d=3, k=4),
    "missing_domain": dict(counts=[30, 0, 25, 40]),  # domain 1 absent from the batch
    "small_domain": dict(counts=[30, 2, 25, 40]),  # domain 1 smaller than top_k
    "odd_small_domain": dict(counts=[30, 3, 25, 40]),  # and with an odd count (domain_covariances leaves it out)
    "many_domains": dict(n=300, d=5, k=16),
}


def _pair(name, fast, naive, **kw):
    for case, spec in CASES.items():
        h, dom = _batch(**spec)
        k = 4 if "counts" in spec else spec["k"]
        a = h.clone().requires_grad_(True)
        b = h.clone().requires_grad_(True)
        va, vb = fast(a, dom, k, **kw), naive(b, dom, k, **kw)
        assert torch.allclose(va, vb, atol=1e-5, rtol=1e-5), (name, case, float(va), float(vb))
        va.backward()
        vb.backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-5), (name, case)


@pytest.mark.parametrize("loss_transform", ["mse", "l1"])
@pytest.mark.parametrize("top_k", [1, 5])
def test_minmax_matches_naive(top_k, loss_transform):
    _pair("minmax", P.minmax_penalty, naive_minmax_penalty, top_k=top_k, loss_transform=loss_transform)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("fix_sigma", [None, 3.0])
@pytest.mark.parametrize("kernels", [(1, 2.0), (5, 2.0), (3, 1.5)])
@pytest.mark.parametrize("block_elements", [None, 2**11])
def test_mmd_matches_naive(fix_sigma, kernels, unbiased, block_elements, monkeypatch):
    if block_elements:  # many blocks of rows (13-20 here), the last one short: the gradient is summed over blocks
        monkeypatch.setattr(P, "KERNEL_BLOCK_ELEMENTS", block_elements)
    _pair(
        "mmd",
        P.mmd_penalty,
        naive_mmd_penalty,
        fix_sigma=fix_sigma,
        kernel_number=kernels[0],
        kernel_multiplier=kernels[1],
        unbiased=unbiased,
    )


@pytest.mark.parametrize("per_pair", [False, True])
@pytest.mark.parametrize("kernels", [(5, 2.0), (3, 1.5)])
def test_mmd_without_gradient_gives_the_same_value(kernels, per_pair):
    # validation and the selection score take the forward pass that skips the gradient's matrix
    h, dom = _batch(n=300, d=4, k=6)
    h = torch.stack([h, 2 * h]).float()  # two restarts, each with its own bandwidths
    options = dict(kernel_number=kernels[0], kernel_multiplier=kernels[1], per_pair=per_pair)
    with_grad = P.mmd_penalty(h.clone().requires_grad_(True), dom, 6, **options)
    with torch.no_grad():
        without = P.mmd_penalty(h.clone().requires_grad_(True), dom, 6, **options)
    assert with_grad.requires_grad and not without.requires_grad
    assert torch.equal(with_grad.detach(), without)


def test_unbiased_mmd_does_not_reward_clustering_invariant_latents():
    # Two domains with the same distribution: uniform latents, or the same latents pushed to two
    # levels (a saturated h_S). The biased estimator averages well above 0 for both, and lower for
    # the clustered ones, so training can lower it by saturating instead of matching domains; the
    # U-statistic averages ~0 for both.
    gen = torch.Generator().manual_seed(0)
    domains = torch.arange(128) % 2
    values = {False: {"uniform": [], "clustered": []}, True: {"uniform": [], "clustered": []}}
    for _ in range(200):
        u = torch.rand(128, 1, generator=gen)
        for name, h in (("uniform", u), ("clustered", (u > 0.5).float() + 0.01 * u)):
            for unbiased in (False, True):
                values[unbiased][name].append(float(P.mmd_penalty(h, domains, 2, fix_sigma=None, unbiased=unbiased)))
    mean = {u: {n: sum(v) / len(v) for n, v in d.items()} for u, d in values.items()}
    assert mean[False]["uniform"] > 0.04  # the bias: ~(k(h, h) - E k(h, h')) / n_i per domain, single draws ~0.05 apart
    assert mean[False]["clustered"] < mean[False]["uniform"] - 0.005
    assert abs(mean[True]["uniform"]) < 0.005 and abs(mean[True]["clustered"]) < 0.005


def test_null_corrected_minmax_does_not_reward_saturation_and_keeps_domain_shifts():
    # The plain min-max of identically distributed domains is the chance difference of their order
    # statistics: lower when h piles up at its extremes (saturated) than when it is uniform. With the
    # null correction both average ~0, and a real shift between domains still counts in full.
    torch.manual_seed(0)
    domains = torch.arange(256) % 4
    plain, corrected = {"uniform": [], "saturated": []}, {"uniform": [], "saturated": []}
    for _ in range(200):
        u = torch.rand(256, 2)
        for name, h in (("uniform", u), ("saturated", u.clamp(0.2, 0.8))):
            plain[name].append(float(P.minmax_penalty(h, domains, 4)))
            corrected[name].append(float(P.minmax_penalty(h, domains, 4, null_corrected=True)))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(plain["saturated"]) < 0.2 * mean(plain["uniform"])
    assert abs(mean(corrected["uniform"])) < 0.2 * mean(plain["uniform"])
    shifted = torch.rand(256, 2) + 0.5 * (domains == 0).float()[:, None]
    assert float(P.minmax_penalty(shifted, domains, 4, null_corrected=True)) > 0.5 * float(P.minmax_penalty(shifted, domains, 4))


def test_unbiased_mmd_leaves_out_domains_with_one_row_and_refuses_per_pair():
    h = torch.randn(9, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    domains = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2])
    with_single = P.mmd_penalty(h, domains, 3, unbiased=True, fix_sigma=1.0)
    without = P.mmd_penalty(h[:8], domains[:8], 3, unbiased=True, fix_sigma=1.0)
    assert abs(float(without)) > 1e-3 and torch.allclose(with_single, without, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="per_pair"):
        P.mmd_penalty(h, domains, 3, unbiased=True, per_pair=True)


def test_stddev_and_hinge_match_naive():
    _pair("stddev", P.stddev_penalty, naive_stddev_penalty)
    _pair("hinge", P.hinge_loss, naive_hinge_loss, stddev_threshold=2.0)


def test_domain_means_matches_naive():
    _pair("domain_means", P.domain_means_penalty, naive_domain_means_penalty)


def test_domain_covariances_matches_naive():
    _pair("domain_covariances", P.domain_covariances_penalty, naive_domain_covariances_penalty)


def test_domain_covariances_has_no_chance_part_whatever_the_shape_and_sees_a_spread_that_moves_with_the_domain():
    g = torch.Generator().manual_seed(2)
    n, k = 2048, 8
    domains = torch.arange(n) % k
    # identically distributed domains, Gaussian or flat (saturated-like): both average about 0, so a
    # lighter-tailed h is not rewarded
    for draw in (
        lambda: torch.randn(n, 4, generator=g, dtype=torch.float64),
        lambda: torch.rand(n, 4, generator=g, dtype=torch.float64),
    ):
        values = torch.stack([P.domain_covariances_penalty(draw(), domains, k) for _ in range(100)])
        assert abs(float(values.mean())) < 3 * float(values.std()) / 100**0.5
    # a coordinate centred in every domain whose spread grows with the domain: means invariant, covariances not
    widths = (0.7 + 0.6 * torch.arange(k, dtype=torch.float64) / k)[domains][:, None]
    spread = (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * widths
    stable = torch.randn(n, 3, generator=g, dtype=torch.float64)
    h = torch.cat([stable, spread], 1)
    assert float(P.domain_covariances_penalty(h, domains, k)) > 0.01
    assert float(P.domain_means_penalty(h, domains, k)) < 0.005
    # in h's own units: a faint copy of that coordinate counts as much
    faint = torch.cat([stable, 0.1 * spread], 1)
    assert float(P.domain_covariances_penalty(faint, domains, k)) == pytest.approx(
        float(P.domain_covariances_penalty(h, domains, k)), rel=0.03
    )


def test_domain_means_is_blind_to_affine_maps_centred_on_invariance_and_finds_a_faint_spurious_direction():
    g = torch.Generator().manual_seed(5)
    n, k = 1600, 8
    domains = torch.arange(n) % k
    stable = torch.randn(n, 5, generator=g, dtype=torch.float64)
    spurious = torch.rand(n, 1, generator=g, dtype=torch.float64) + domains[:, None] / k  # its box moves with the domain
    # a spurious direction at 1/10 of the scale counts as much as at full scale, where MMD sees little of it
    faint, full = torch.cat([stable, 0.1 * spurious], 1), torch.cat([stable, spurious], 1)
    assert float(P.domain_means_penalty(faint, domains, k)) == pytest.approx(
        float(P.domain_means_penalty(full, domains, k)), rel=0.03
    )
    # the domain explains half of that direction's variance: 0.5 / min(d, k - 1) = 0.083
    assert float(P.domain_means_penalty(faint, domains, k)) > 0.07
    mmd = lambda h: float(P.mmd_penalty(h, domains, k, unbiased=True))  # noqa: E731
    assert mmd(faint) < 0.1 * mmd(full)
    # any invertible affine map of h (shrinking, rotating, shifting) leaves it unchanged, up to the ridge
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64) * 0.1
    assert float(P.domain_means_penalty(full @ mix + 3.0, domains, k)) == pytest.approx(
        float(P.domain_means_penalty(full, domains, k)), rel=0.02
    )
    # identically distributed domains: the chance level is taken off, so it averages about 0
    draws = torch.stack(
        [P.domain_means_penalty(torch.randn(n, 6, generator=g, dtype=torch.float64), domains, k) for _ in range(200)]
    )
    assert abs(float(draws.mean())) < 3 * float(draws.std()) / 200**0.5


@pytest.mark.parametrize(
    "fn", [P.minmax_penalty, P.mmd_penalty, P.stddev_penalty, P.domain_means_penalty, P.domain_covariances_penalty]
)
def test_single_domain_batch_is_zero_with_gradient(fn):
    h = torch.randn(50, 3, requires_grad=True)
    value = fn(h, torch.full((50,), 2), 4)
    value.backward()
    assert float(value) == 0.0 and torch.all(h.grad == 0)


def test_penalties_zero_for_identical_domains_and_positive_for_shifted():
    h = torch.rand(100, 2, generator=torch.Generator().manual_seed(1))
    same = torch.cat([h, h])
    dom = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    for fn in (P.minmax_penalty, P.mmd_penalty, P.stddev_penalty):
        assert float(fn(same, dom, 2)) == pytest.approx(0.0, abs=1e-6)
    shifted = torch.cat([h, h * 3 + 1])
    for fn in (P.minmax_penalty, P.mmd_penalty, P.stddev_penalty):
        assert float(fn(shifted, dom, 2)) > 1e-2


def test_hinge_penalises_collapse_only():
    dom = torch.arange(200) % 2
    collapsed = torch.full((200, 3), 0.5)
    spread = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * 5
    assert float(P.hinge_loss(collapsed, dom, 2, stddev_threshold=1.0)) == pytest.approx(1.0 - 1e-2, abs=1e-3)
    assert float(P.hinge_loss(spread, dom, 2, stddev_threshold=1.0)) == 0.0


def test_fixed_bandwidth_far_below_distances_is_detected():
    h = torch.randn(256, 32) * 3
    assert P.mmd_kernel_vanishes(h, 1.0, 1, 2.0) is not None
    assert P.mmd_kernel_vanishes(h, None, 1, 2.0) is None
    assert P.mmd_kernel_vanishes(h, 1000.0, 1, 2.0) is None


def test_sum_reduction_matches_the_naive_sums():
    _pair("minmax", P.minmax_penalty, naive_minmax_penalty, reduction="sum")
    _pair("mmd", P.mmd_penalty, naive_mmd_penalty, reduction="sum")
    _pair("stddev", P.stddev_penalty, naive_stddev_penalty, reduction="sum")
    _pair("hinge", P.hinge_loss, naive_hinge_loss, stddev_threshold=2.0, reduction="sum")


@pytest.mark.parametrize("fix_sigma", [None, 3.0])
def test_per_pair_mmd_matches_the_reference_definition(fix_sigma):
    kw = dict(fix_sigma=fix_sigma, kernel_number=1, kernel_multiplier=1.0)
    _pair("mmd", lambda h, d, k, **o: P.mmd_penalty(h, d, k, reduction="sum", per_pair=True, **o), naive_reference_mmd, **kw)


@pytest.mark.parametrize(
    "fn", [P.minmax_penalty, P.mmd_penalty, P.stddev_penalty, P.hinge_loss, P.domain_means_penalty, P.domain_covariances_penalty]
)
def test_restarts_give_each_copy_its_own_penalty(fn):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(3, 120, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    domains = torch.randint(0, 4, (120,), generator=g)
    together = fn(h, domains, 4)
    alone = torch.stack([fn(h[r], domains, 4) for r in range(3)])
    assert together.shape == (3,) and torch.allclose(together, alone, atol=1e-10)
    (grad_together,) = torch.autograd.grad(together.sum(), h)
    (grad_alone,) = torch.autograd.grad(alone.sum(), h)
    assert torch.allclose(grad_together, grad_alone, atol=1e-10)


def test_reference_objective_preset_computes_the_reference_values(compose):
    from mdcrl.models.autoencoders import build_autoencoder
    from mdcrl.models.module import MultiDomainAutoencoder
    from mdcrl.settings import RunSettings

    cfg = compose(
        [
            "model/objective=reference",
            "model.penalty_criterion.mmd=1.",
            "model.penalty_criterion.stddev=1.",
            "model.mmd_loss.fix_sigma=null",
            "model.hinge_loss_weight=1.",
        ]
    )
    m = cfg.model
    settings = RunSettings.from_config(cfg)
    module = MultiDomainAutoencoder(build_autoencoder(m.autoencoder, 6, 4), 4, 2, 2, settings.penalties, settings.optim)
    h, domains = _batch(n=240, d=2, k=4)
    terms = module.penalty_terms(h, domains)
    assert float(terms["minmax"]) == pytest.approx(float(naive_minmax_penalty(h, domains, 4, reduction="sum")), rel=1e-6)
    assert float(terms["mmd"]) == pytest.approx(float(naive_reference_mmd(h, domains, 4)), rel=1e-6)
    assert float(terms["stddev"]) == pytest.approx(float(naive_stddev_penalty(h, domains, 4, reduction="sum")), rel=1e-6)
    hinge = naive_hinge_loss(h, domains, 4, stddev_threshold=1.0, stddev_eps=m.hinge_loss.stddev_eps, reduction="sum")
    assert float(terms["hinge"]) == pytest.approx(float(hinge), rel=1e-6)
