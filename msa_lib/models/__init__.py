"""Models: one file per paper model. ``MODELS`` is the only registry: name -> (class, config)."""
from __future__ import annotations

from ..core import Batch, config_from_dict
from .base import ModelOutput, MSAModel, OptimizerStep, Stage
from .dar import DAR, DARConfig
from .mitr_dnet import MITRConfig, MITRDNet
from .sdumc import SDUMC, SDUMCConfig
from .tfn import TFN, TFNConfig
from .umdf import UMDF, UMDFConfig

MODELS: dict[str, tuple[type[MSAModel], type]] = {
    "tfn": (TFN, TFNConfig),
    "mitr_dnet": (MITRDNet, MITRConfig),
    "umdf": (UMDF, UMDFConfig),
    "sdumc": (SDUMC, SDUMCConfig),
    "dar": (DAR, DARConfig),
}


def build_model(name: str, dims: dict[str, int], config: dict | None = None, n_classes: int | None = None
                ) -> MSAModel:
    """Instantiate model ``name`` with a config dict (unknown keys are refused with one clear error)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    cls, config_cls = MODELS[name]
    return cls(dims, config_from_dict(config_cls, config, f"{name} model config"), n_classes=n_classes)


__all__ = ["Batch", "DAR", "DARConfig", "MITRConfig", "MITRDNet", "ModelOutput", "MSAModel", "MODELS", "OptimizerStep", "SDUMC", "SDUMCConfig", "Stage", "build_model", "TFN", "TFNConfig", "UMDF", "UMDFConfig"]
