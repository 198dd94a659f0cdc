"""Pruning: score weights or neurons, mask the least important, compact, schedule, sparsify, probe.

``tp.prune.prune(model, sparsity, criterion, scope, structure, data)`` is the verb; ``magnitude``,
``random``, ``gradient``, ``taylor``, ``hybrid``, ``obd``, ``lamp``, ``neurons``, ``n_m`` and
``threshold`` are its short forms. Modules, one concept each: ``criteria`` (scores), ``select`` (scores
to masks), ``masks`` (the mask laws), ``compact`` (physically smaller MLPs), ``schedules`` (one-shot,
iterative, polynomial), ``sparsify`` (L1 and soft-threshold training), ``sensitivity`` (one layer at a
time). Derived in ``notebooks/05_pruning_criteria.ipynb`` and
``notebooks/09_structured_pruning_and_speed.ipynb``.

>>> import numpy as np
>>> from tinyprune.nn import MLP
>>> from tinyprune import prune as tpp
>>> model = MLP([20, 8, 8, 3], seed=0)
>>> _ = tpp.neurons(model, 0.5, scope="layer")
>>> tpp.compact(model).sizes
[20, 4, 4, 3]
"""

from tinyprune.prune import criteria, masks, select
from tinyprune.prune.compact import compact, compaction_report
from tinyprune.prune.core import (
    CRITERIA,
    NEEDS_DATA,
    NEURON_CRITERIA,
    SCOPES,
    STRUCTURES,
    gradient,
    hybrid,
    lamp,
    magnitude,
    n_m,
    neurons,
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
)
from tinyprune.prune.schedules import (
    IterativePruning,
    PolynomialPruning,
    iterative,
    iterative_sparsities,
    one_shot,
    polynomial_sparsity,
)
from tinyprune.prune.sensitivity import SensitivityTable, sensitivity
from tinyprune.prune.sparsify import L1Regularized, SoftThreshold, SparsifyReport, sparsify

__all__ = [
    "CRITERIA", "NEEDS_DATA", "NEURON_CRITERIA", "SCOPES", "STRUCTURES", "IterativePruning", "L1Regularized",
    "PolynomialPruning", "SensitivityTable", "SoftThreshold", "SparsifyReport", "apply_mask", "combine",
    "compact", "compaction_report", "criteria", "get_masks", "gradient", "hybrid", "is_pruned", "iterative",
    "iterative_sparsities", "lamp", "magnitude", "mask_stats", "masks", "n_m", "neurons", "obd", "one_shot",
    "polynomial_sparsity", "prune", "random", "remove", "reset", "select", "sensitivity", "set_masks",
    "sparsify", "taylor", "threshold",
]
