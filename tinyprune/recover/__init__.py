"""Recovering a pruned network: fine-tuning, retraining, rewinding, distillation, closed-form reconstruction;
the lottery ticket (iterative magnitude pruning with rewinding) and its controls (``lottery.py``).

Every recovery keeps the masks: pruned weights stay exactly 0 (the optimizers are mask-aware and the
closed-form solvers write only the surviving entries). Every training recovery is one call of
``finetune`` (masked ``fit``); the loop that prunes, asks "recovered?" and recovers again is
``tp.prune_and_recover`` (``experiment.loop``), whose recovery parts call these functions. Notebooks:
``notebooks/07_finetuning.ipynb`` and ``notebooks/08_residual_and_reconstruction.ipynb``.
"""

from tinyprune.recover.average import AVERAGES, WeightAverage
from tinyprune.recover.distill import (
    OUTPUTS,
    Distillation,
    distill,
    distillation_gradients,
    distillation_loss,
    distillation_loss_tensor,
    hidden_activations,
    hidden_distillation_tensor,
    hidden_residual_loss,
)
from tinyprune.recover.finetune import (
    LayerDensityRates,
    build_optimizer,
    density_factor,
    density_scaled_lr,
    finetune,
    layer_density_scales,
    lr_rewind,
    resolve_schedule,
)
from tinyprune.recover.lottery import (
    LotteryRow,
    iterative_magnitude_pruning,
    lottery_table,
    reinitialize_control,
    shuffle_control,
    shuffle_mask,
)
from tinyprune.recover.reconstruct import ReconstructionReport, reconstruct, reconstruct_layer
from tinyprune.recover.retrain import reinitialize, retrain, rewind, rewind_weights

__all__ = [
    "AVERAGES", "LayerDensityRates", "LotteryRow", "OUTPUTS", "Distillation", "ReconstructionReport",
    "WeightAverage", "build_optimizer", "density_factor", "density_scaled_lr", "layer_density_scales",
    "distill", "distillation_gradients", "distillation_loss", "distillation_loss_tensor",
    "finetune", "hidden_activations", "hidden_distillation_tensor", "hidden_residual_loss",
    "iterative_magnitude_pruning", "lottery_table", "lr_rewind", "reconstruct",
    "reconstruct_layer", "reinitialize", "reinitialize_control", "resolve_schedule", "retrain", "rewind",
    "rewind_weights", "shuffle_control", "shuffle_mask",
]
