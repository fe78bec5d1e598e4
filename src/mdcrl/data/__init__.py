from mdcrl.data.base import MultiDomainData, Split
from mdcrl.data.mixing import generate_mixing_data

__all__ = ["MultiDomainData", "MultiDomainDataModule", "Split", "generate_mixing_data"]


def __getattr__(name):
    # The data module imports Lightning (~2 s): only on first use, so that the sweep's pre-launch
    # check of every job (mdcrl.validation, which reads the data modules' constants) stays light.
    if name == "MultiDomainDataModule":
        from mdcrl.data.datamodule import MultiDomainDataModule

        return MultiDomainDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
