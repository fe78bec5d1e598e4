"""mdcrl: multi-domain causal representation learning via weak distributional invariances."""

__version__ = "0.1.0"
