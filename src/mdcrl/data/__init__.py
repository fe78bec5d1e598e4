from mdcrl.data.base import MultiDomainData, Split
from mdcrl.data.datamodule import MultiDomainDataModule
from mdcrl.data.mixing import generate_mixing_data

__all__ = ["MultiDomainData", "MultiDomainDataModule", "Split", "generate_mixing_data"]
