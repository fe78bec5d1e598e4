"""Restarts and whitening in the autoencoder container (models/base.py) and the run they make."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mdcrl.models.autoencoders import linear_autoencoder, mlp_autoencoder, polynomial_autoencoder
from mdcrl.models.base import fit_whitening
from mdcrl.train import run


def test_whitening_drops_directions_without_variance_and_whitens_the_rest():
    rng = np.random.default_rng(0)
    z = rng.uniform(-5, 5, size=(4000, 3))
    x = (z @ rng.uniform(0, 1, size=(3, 6)) + 2.0).astype(np.float32)  # rank 3 in 6 coordinates
    mean, matrix = fit_whitening(x)
    assert matrix.shape == (6, 3)
    white = (x - mean) @ matrix
    assert np.allclose(np.cov(white, rowvar=False), np.eye(3), atol=1e-3)


def test_whitening_to_fewer_dims_keeps_the_largest_principal_directions():
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 0.1, 3.0, 0.2, 1.0])
    x = (rng.standard_normal((4000, 5)) * scales).astype(np.float32)
    mean, matrix = fit_whitening(x, dims=2)
    assert matrix.shape == (5, 2)
    white = (x - mean) @ matrix
    assert np.allclose(np.cov(white, rowvar=False), np.eye(2), atol=1e-3)
    # the kept directions are the coordinates of std 5 and 3
    assert np.allclose(np.abs(matrix[[1, 3, 4]]), 0.0, atol=1e-2)


def test_whiten_dims_that_the_data_or_the_model_cannot_take_fail_naming_the_setting(tmp_path, compose):
    from mdcrl.errors import ConfigError

    base = ["trainer.max_epochs=1", "datamodule.dataset.num_samples.train=400"]
    with pytest.raises(ConfigError, match=r"model.whiten_dims=99 is more than the \d+ input features"):
        run(compose([*base, "model.whiten_dims=99"]), run_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"model.z_dim=8: .*model.whiten_dims=4"):
        run(compose([*base, "model.whiten_dims=4"]), run_dir=tmp_path / "b")


def test_stacked_restarts_are_independent_copies():
    torch.manual_seed(0)
    ae = linear_autoencoder(6, 3, restarts=3, frame="free")
    x = torch.randn(50, 6)
    h, x_hat, target = ae.forward_restarts(x)
    assert h.shape == (3, 50, 3) and x_hat.shape == (3, 50, 6) and torch.equal(target, x)
    for r in range(3):  # restart r is the plain linear map with its own weights
        expected = x @ ae.encoder.weight[r] + ae.encoder.bias[r]
        assert torch.allclose(h[r], expected, atol=1e-6)
    ae.chosen.fill_(2)
    assert torch.allclose(ae.encode(x), h[2])
    (h[0].sum()).backward()  # a loss of restart 0 reaches only restart 0's weights
    assert ae.encoder.weight.grad[1:].abs().max() == 0 and ae.encoder.weight.grad[0].abs().max() > 0


def test_only_chosen_computes_the_chosen_copy_alone():
    torch.manual_seed(0)
    ae = mlp_autoencoder(6, 3, hidden_dims=[5], restarts=3)
    x = torch.randn(40, 6)
    h_all, x_hat_all, _ = ae.forward_restarts(x)
    ae.chosen.fill_(1)
    ae.only_chosen = True
    h, x_hat, _ = ae.forward_restarts(x)
    assert h.shape == (1, 40, 3) and x_hat.shape == (1, 40, 6)
    assert torch.allclose(h[0], h_all[1], atol=1e-6) and torch.allclose(x_hat[0], x_hat_all[1], atol=1e-6)
    assert torch.allclose(ae.encode(x), h_all[1], atol=1e-6) and ae.chosen_position == 0
    x_hat.sum().backward()  # only the chosen copy's slices get a gradient
    grad = ae.encoder[0].weight.grad
    assert grad[1].abs().max() > 0 and grad[[0, 2]].abs().max() == 0
    ae.only_chosen = False
    assert ae.forward_restarts(x)[0].shape == (3, 40, 3)


@pytest.mark.parametrize(
    "frame, weights",
    [
        ("orthonormal", ("autoencoder.encoder.frame.weight",)),
        ("free", ("autoencoder.encoder.weight", "autoencoder.decoder.weight")),
    ],
)
def test_restart_selection_trains_the_chosen_copy_as_it_would_have_been_trained(tmp_path, compose, frame, weights):
    """Narrowing after restart_selection_epochs drops the other copies' work only: the chosen copy's
    weights after the last epoch are those it reaches when every copy trains to the end."""
    base = ["model.restarts=3", "trainer.max_epochs=8", "callbacks.early_stopping=null", f"model.autoencoder.frame={frame}"]
    run(compose([*base, "model.restart_selection_epochs=null"]), run_dir=tmp_path / "all")
    run(compose([*base, "model.restart_selection_epochs=3"]), run_dir=tmp_path / "narrowed")
    last = {
        d: torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for d in ("all", "narrowed")
    }
    chosen = int(last["narrowed"]["autoencoder.chosen"])
    for name in weights:
        assert torch.allclose(last["narrowed"][name][chosen], last["all"][name][chosen], rtol=1e-4, atol=1e-6)
        others = [r for r in range(3) if r != chosen]
        assert not torch.allclose(last["narrowed"][name][others], last["all"][name][others], atol=1e-6)
    curves = pd.read_csv(tmp_path / "narrowed" / "csv" / "metrics.csv")
    assert curves["val/selection"].notna().sum() == 8 and curves["val/log_selection"].notna().sum() == 8


def test_whitened_model_takes_raw_inputs_and_reconstructs_in_input_space():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) * 3 + 5).astype(np.float32)
    mean, matrix = fit_whitening(x)
    ae = mlp_autoencoder(4, 4, hidden_dims=[8], restarts=2)
    ae.set_whitening(mean, matrix)
    xt = torch.from_numpy(x)
    _, x_hat, target = ae.forward_restarts(xt)
    assert torch.allclose(target, torch.from_numpy((x - mean) @ matrix), atol=1e-4)
    _, recon = ae(xt)  # forward maps the chosen restart's reconstruction back to x's space
    chosen = int(ae.chosen)
    assert torch.allclose(recon, x_hat[chosen] @ torch.linalg.pinv(torch.from_numpy(matrix)) + torch.from_numpy(mean), atol=1e-4)


def test_run_keeps_the_restart_with_the_lowest_selection_score(tmp_path, compose):
    metrics = run(compose(["model.restarts=3", "trainer.max_epochs=6"]), run_dir=tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    losses = info["restart_selection_scores"]
    assert len(losses) == 3 and info["chosen_restart"] == int(np.argmin(losses))
    assert info["whitening"] == {"input_dim": 16, "whitened_dim": 8}
    state = torch.load(info["best_checkpoint"], weights_only=True)["state_dict"]
    assert int(state["autoencoder.chosen"]) == info["chosen_restart"]
    assert state["autoencoder.encoder.frame.weight"].shape[0] == 3
    assert np.isfinite(metrics["r2_zinv_from_hinv"])


def test_activation_option_sets_the_hidden_nonlinearity():
    ae = polynomial_autoencoder(6, 2, degree=2, hidden_dims=[8, 8], activation="silu", restarts=2)
    kinds = [type(m).__name__ for m in ae.encoder]
    assert kinds == ["StackedLinear", "SiLU", "StackedLinear", "SiLU", "StackedLinear"]
    z_hat, x_hat = ae(torch.zeros(5, 6))
    assert z_hat.shape == (5, 2) and x_hat.shape == (5, 6)  # forward returns the chosen restart
    leaky = mlp_autoencoder(6, 2, hidden_dims=[8], negative_slope=0.2)
    assert [m.negative_slope for m in leaky.encoder if isinstance(m, torch.nn.LeakyReLU)] == [0.2]


def test_an_empty_encoder_hidden_dims_makes_the_latents_affine_in_the_input():
    torch.manual_seed(0)
    x1, x2 = torch.randn(16, 10), torch.randn(16, 10)
    linear = mlp_autoencoder(10, 4, hidden_dims=[32], batch_norm=True, encoder_hidden_dims=[]).eval()
    mixed = linear.encoder(0.3 * x1 + 0.7 * x2)
    assert torch.allclose(mixed, 0.3 * linear.encoder(x1) + 0.7 * linear.encoder(x2), atol=1e-5)
    assert linear.decoder(torch.randn(16, 4)).shape == (16, 10)  # the decoder keeps its hidden layers
    deep = mlp_autoencoder(10, 4, hidden_dims=[32], batch_norm=True).eval()
    assert not torch.allclose(deep.encoder(0.3 * x1 + 0.7 * x2), 0.3 * deep.encoder(x1) + 0.7 * deep.encoder(x2), atol=1e-3)


def test_heldout_batches_hold_every_domain_in_proportion():
    from mdcrl.data.datamodule import interleaved_order

    domains = np.repeat([3, 0, 7, 1], [500, 500, 250, 750])  # stored domain by domain, unequal sizes
    order = interleaved_order(domains).numpy()
    assert sorted(order) == list(range(len(domains)))
    for start in range(0, len(domains), 400):
        counts = np.bincount(np.searchsorted([0, 1, 3, 7], domains[order][start : start + 400]), minlength=4)
        assert np.all(np.abs(counts - np.array([500, 750, 500, 250]) * 400 / 2000) <= 1)


def test_selection_score_is_that_of_the_whole_split_whatever_the_batch_size(compose):
    """The held-out selection score takes its penalties over the whole split at once, so the
    evaluation batch size does not change it (the loss terms themselves are per-batch means)."""
    from mdcrl.builders import build_data, build_module
    from mdcrl.evaluation import split_losses
    from mdcrl.settings import RunSettings

    settings = RunSettings.from_config(compose(["model.penalty_criterion.mmd=1.", "model.mmd_loss.fix_sigma=null"]))
    data = build_data(settings)
    module = build_module(settings, data)
    valid = data.splits["valid"]
    small, large = split_losses(module, valid, 64), split_losses(module, valid, 4096)
    assert np.allclose(small["selection"], large["selection"], rtol=1e-5)
    assert np.allclose(small["recon_mse"], large["recon_mse"], rtol=1e-5)
    assert not np.allclose(small["mmd"], large["mmd"], rtol=1e-3)  # the batch-level penalty does change


def test_the_domain_penalties_enter_the_objective_and_the_selection_score_with_their_weights(compose):
    import torch

    from mdcrl import penalties
    from mdcrl.builders import build_data, build_module
    from mdcrl.settings import RunSettings

    weights = ["model.penalty_criterion.domain_means=2.", "model.penalty_criterion.domain_covariances=3."]
    settings = RunSettings.from_config(compose(["model.penalty_criterion.minmax=0.", *weights]))
    data = build_data(settings)
    module = build_module(settings, data)
    valid = data.splits["valid"]
    x, domains = torch.as_tensor(valid.x[:512]), torch.as_tensor(valid.domain[:512]).long()
    _, parts, h = module.losses(x, domains)
    h_s = h[..., : module.z_dim_stable].detach()
    means = penalties.domain_means_penalty(h_s, domains, module.num_domains)
    covariances = penalties.domain_covariances_penalty(h_s, domains, module.num_domains)
    assert torch.allclose(parts["domain_means"], means) and torch.allclose(parts["domain_covariances"], covariances)
    expected = parts["recon_mse"] + settings.penalties.scale * (2.0 * means + 3.0 * covariances)
    assert torch.allclose(parts["loss"], expected, atol=1e-6)
    score = module.selection_score(parts["recon_mse"].detach(), h_s, domains)
    assert torch.allclose(score, expected.detach(), atol=1e-6)


@pytest.mark.parametrize("standardize", [False, True])
def test_penalty_standardize_makes_the_training_penalty_blind_to_the_scale_of_h_s(compose, standardize):
    """model.penalty_standardize=true: min-max (and stddev) see h_S standardised per coordinate, so
    shrinking h_S cannot lower them; by default (the paper's objective) they scale with h_S."""
    import torch

    from mdcrl.builders import build_data, build_module
    from mdcrl.settings import RunSettings

    settings = RunSettings.from_config(
        compose([f"model.penalty_standardize={str(standardize).lower()}", "model.penalty_criterion.stddev=1."])
    )
    assert settings.penalties.standardize is standardize
    module = build_module(settings, build_data(settings))
    h_s = torch.randn(1, 400, 3) + torch.linspace(0, 1, 400)[None, :, None]
    domains = torch.arange(400) % 4
    terms = module.scale_free_terms if standardize else module.penalty_terms
    small, large = terms(0.1 * h_s, domains), terms(h_s, domains)
    for name in ("minmax", "stddev"):
        if standardize:
            assert torch.allclose(small[name], large[name], rtol=1e-4)
        elif name == "minmax":
            assert float(small[name]) < 0.05 * float(large[name])


def test_null_corrected_minmax_applies_to_training_steps_only(compose):
    """model.minmax_loss.null_corrected=true changes the training penalty; held-out curves and the
    selection score (module in eval mode) keep the plain min-max, without a random permutation."""
    import torch

    from mdcrl import penalties
    from mdcrl.builders import build_data, build_module
    from mdcrl.settings import RunSettings

    settings = RunSettings.from_config(compose(["model.minmax_loss.null_corrected=true"]))
    assert settings.penalties.minmax.null_corrected
    module = build_module(settings, build_data(settings))
    torch.manual_seed(0)
    h_s = torch.rand(1, 400, 3)
    domains = torch.arange(400) % 4
    plain = penalties.minmax_penalty(h_s, domains, module.num_domains)
    module.eval()
    assert torch.equal(module.penalty_terms(h_s, domains)["minmax"], plain)
    module.train()
    assert not torch.allclose(module.penalty_terms(h_s, domains)["minmax"], plain)
