"""Pruning: score weights or neurons, mask the least important, compact, schedule, sparsify, probe.

``tp.prune.prune(model, sparsity, criterion, scope, structure, data)`` is the verb; ``criterion`` is a
``Criterion`` object (``parts``: one class per criterion, found by name in one registry, and yours
joins with ``register_criterion``) or its name; ``magnitude``,
``random``, ``gradient``, ``taylor``, ``hybrid``, ``obd``, ``lamp``, ``neurons``, ``n_m``, ``blocks``
and ``threshold`` are its short forms. ``sparsity`` is a number or a per-layer mapping, which
``allocate`` chooses (uniform, ERK, LAMP, sensitivity). Modules, one concept each: ``criteria``
(scores), ``movement`` (scores accumulated during training), ``group`` (Torch-Pruning's group
importance of neurons), ``select`` (scores to masks, blocks), ``masks`` (the mask laws), ``obs``
(Optimal Brain Surgeon), ``allocate`` (sparsity per layer), ``compact`` (physically smaller MLPs),
``sparsity_steps`` (the sparsity at each step: one-shot, polynomial and geometric curves), ``pruner``
(``Pruner``: sparsity steps stepped by your own training loop), ``sparsify`` (L1 and soft-threshold
training), ``sensitivity`` (one layer at a time). Derived in ``notebooks/05_pruning_criteria.ipynb``
and ``notebooks/09_structured_pruning_and_speed.ipynb``.

>>> import numpy as np
>>> from tinyprune.core.nn import MLP
>>> from tinyprune import prune as tpp
>>> model = MLP([20, 8, 8, 3], seed=0)
>>> _ = tpp.neurons(model, 0.5, scope="layer")
>>> tpp.compact(model).sizes
[20, 4, 4, 3]
"""

from tinyprune.prune import criteria, group, masks, movement, obs, parts, select
from tinyprune.prune.allocate import METHODS, allocate, implied_sparsity
from tinyprune.prune.compact import compact, compaction_report
from tinyprune.prune.core import (
    SCOPES,
    STRUCTURES,
    blocks,
    gradient,
    hybrid,
    lamp,
    magnitude,
    n_m,
    neurons,
    normalise_neuron_scores,
    obd,
    prune,
    random,
    taylor,
    threshold,
)
from tinyprune.prune.masks import (
    apply_mask,
    combine,
    get_masks,
    is_pruned,
    mask_stats,
    remove,
    reset,
    set_masks,
    weight_sparsity,
)
from tinyprune.prune.movement import MovementScore
from tinyprune.prune.obs import obs_prune
from tinyprune.prune.parts import (
    CRITERIA,
    FPGM,
    NEEDS_DATA,
    NEURON_CRITERIA,
    OBD,
    OBS,
    Criterion,
    Gradient,
    Hybrid,
    Lamp,
    Magnitude,
    MagnitudeActivation,
    Movement,
    NeuronActivation,
    NeuronGroup,
    NeuronL1Out,
    NeuronL2,
    NeuronL2Out,
    NeuronNorm,
    NeuronOBD,
    NeuronRandom,
    NeuronTaylor,
    Random,
    Taylor,
    criterion_class,
    criterion_names,
    make_criterion,
    register_criterion,
    unregister_criterion,
)
from tinyprune.prune.pruner import Pruner
from tinyprune.prune.regrow import RigLRegrowth, regrow
from tinyprune.prune.sensitivity import SensitivityTable, sensitivity
from tinyprune.prune.sparsify import L1Regularized, SoftThreshold, SparsifyReport, sparsify
from tinyprune.prune.sparsity_steps import (
    IterativePruning,
    PolynomialPruning,
    geometric_steps,
    one_shot,
    polynomial_sparsity,
    polynomial_steps,
)

__all__ = [
    "FPGM", "OBD", "OBS", "Criterion", "Gradient", "Hybrid", "Lamp", "Magnitude", "MagnitudeActivation",
    "Movement", "NeuronActivation", "NeuronGroup", "NeuronL1Out", "NeuronL2", "NeuronL2Out", "NeuronNorm",
    "NeuronOBD",
    "NeuronRandom", "NeuronTaylor", "Random", "Taylor", "criterion_class", "criterion_names",
    "make_criterion", "parts", "register_criterion", "unregister_criterion",
    "CRITERIA", "METHODS", "NEEDS_DATA", "NEURON_CRITERIA", "SCOPES", "STRUCTURES", "IterativePruning",
    "L1Regularized", "MovementScore", "PolynomialPruning", "Pruner", "SensitivityTable", "SoftThreshold",
    "SparsifyReport", "allocate",
    "apply_mask", "blocks", "combine", "compact", "compaction_report", "criteria", "geometric_steps",
    "get_masks", "gradient", "group", "hybrid", "implied_sparsity", "is_pruned",
    "lamp", "magnitude", "mask_stats", "masks", "movement", "n_m", "neurons", "normalise_neuron_scores",
    "weight_sparsity",
    "obd", "obs", "obs_prune", "one_shot", "polynomial_sparsity", "polynomial_steps", "prune", "random",
    "regrow", "remove", "reset", "RigLRegrowth",
    "select", "sensitivity", "set_masks", "sparsify", "taylor", "threshold",
]
