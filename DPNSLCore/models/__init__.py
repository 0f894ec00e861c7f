"""DP-NSL network: config presets, the null-space estimator, the MCP-wrapped model and checkpoints."""

from .checkpoint import FORMAT_VERSION, load_checkpoint, read_checkpoint_info, save_checkpoint
from .config import DEFAULT_PRESET, PRESETS, ModelConfig, preset
from .network import DPNSL, NullSpaceEstimator, build_model, count_parameters

__all__ = [
    "DEFAULT_PRESET",
    "DPNSL",
    "FORMAT_VERSION",
    "PRESETS",
    "ModelConfig",
    "NullSpaceEstimator",
    "build_model",
    "count_parameters",
    "load_checkpoint",
    "preset",
    "read_checkpoint_info",
    "save_checkpoint",
]
