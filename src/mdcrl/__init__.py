"""mdcrl: multi-domain causal representation learning via weak distributional invariances."""

__version__ = "0.1.0"

__all__ = ["InvariantAutoencoder", "__version__"]


def __getattr__(name):
    # Lazy, so that `import mdcrl` (and run_training.py --help) does not pay for importing torch.
    if name == "InvariantAutoencoder":
        from mdcrl.estimator import InvariantAutoencoder

        return InvariantAutoencoder
    raise AttributeError(f"module 'mdcrl' has no attribute {name!r}")
