"""Importance criteria: how much would the loss suffer if this weight (or neuron) were set to 0?

Each criterion maps the model (and, where it needs it, calibration data ``X, y``) to a score per entry:
``{param_name: score array of the parameter's shape}`` for weights, ``{"layers.l": (d_{l+1},)}`` for the
hidden neurons of layer ``l``. Low score = pruned first. Scores are computed for every parameter
(biases too); ``select`` decides which ones may be pruned. Gradients and curvatures are of the *mean*
loss over the calibration rows, accumulated in batches of ``batch_size`` rows. These are the formulas;
``parts.py`` makes each one a ``Criterion`` object (its name, what it needs, its options) for ``prune``.
Derived in ``notebooks/05_pruning_criteria.ipynb`` (weights) and
``notebooks/09_structured_pruning_and_speed.ipynb`` (neurons).

The document (sections 2.1 and 3.2) names magnitude ("connection strength"), gradient and their mix
("hybrid"); the others are the standard ones of the literature, each with its source below.

>>> from tinyprune.core.nn import MLP
>>> model = MLP([2, 2], seed=0)
>>> model.layers[0].W.data[...] = [[1.0, -3.0], [0.5, 2.0]]
>>> magnitude(model)["layers.0.W"]
array([[1. , 3. ],
       [0.5, 2. ]], dtype=float32)
>>> lamp(model)["layers.0.W"].round(3)     # 0.25/14.25, 1/14, 4/13, 9/9
array([[0.071, 1.   ],
       [0.018, 0.308]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyprune.checks import check_choice, check_fraction, check_int, check_number
from tinyprune.core import backprop, losses
from tinyprune.core.nn import MLP
from tinyprune.core.random import Seed, rng
from tinyprune.errors import ShapeError
from tinyprune.prune import movement as moving

Scores = dict[str, np.ndarray]

HESSIANS = ("lecun", "fisher", "layerwise")
NORMALIZERS = ("lamp",)


# ------------------------------------------------------------------ helpers
def _check_model(model: Any) -> MLP:
    if not isinstance(model, MLP):
        raise TypeError(f"pruning criteria work on an MLP, got {type(model).__name__}")
    return model


def _check_batch_size(batch_size: int) -> int:
    return check_int("batch_size", batch_size, 1)


def _check_data(model: MLP, X: Any, y: Any = None, need_y: bool = True) -> tuple[np.ndarray, Any]:
    if X is None or (need_y and y is None):
        raise ValueError("this criterion needs calibration data: pass X and y (e.g. a few hundred "
                         "training rows)")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != model.sizes[0] or X.shape[0] == 0:
        raise ShapeError(f"calibration X must have shape (n >= 1, {model.sizes[0]}), got {X.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ShapeError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match")
    return X, y


def _batches(X: np.ndarray, y: Any, batch_size: int) -> Iterator[tuple[np.ndarray, Any]]:
    for start in range(0, X.shape[0], batch_size):
        yield X[start:start + batch_size], None if y is None else y[start:start + batch_size]


def _per_sample_deltas(model: MLP, cache: backprop.Cache, yb: Any, loss: str) -> list[np.ndarray]:
    """``δ_l = dℓ_i/dZ_l`` for every layer, row i being the gradient of *its own* sample's loss ℓ_i."""
    _, dlogits = losses.loss_and_grad(loss, cache.logits, yb)
    delta = dlogits * cache.logits.shape[0]          # the mean's 1/n undone: one row per sample
    deltas = [delta]
    for index in range(len(model.layers) - 1, 0, -1):
        slope = backprop.derivative(cache.Z[index - 1], model.activation)        # act'(Z_{l-1})
        delta = (delta @ model.layers[index].W.data.T) * slope
        deltas.append(delta)
    return deltas[::-1]


def _normalise(score: np.ndarray) -> np.ndarray:
    top = score.max() if score.size else 0
    return score / top if top > 0 else np.zeros_like(score)


# ------------------------------------------------------- weight criteria
def magnitude(model: MLP, p: float = 1, normalizer: str | None = None) -> Scores:
    """``s = |w|^p``: small weights matter least (Han et al. 2015, "Learning both weights and connections").

    The document's "connection strength" (section 3.2). Any ``p > 0`` ranks the weights of one layer
    alike; what ``p`` changes is how layers compare once a ``normalizer`` rescales each one:
    ``"lamp"`` (``lamp_normalise``; with ``p = 2`` it is ``lamp``, as Torch-Pruning's LAMP normaliser).
    Shapes: each score has its parameter's shape and dtype.
    """
    p = check_number("p", p, 0, None, low_open=True)
    if normalizer is not None:
        check_choice("normalizer", normalizer, NORMALIZERS)
    scores = {}
    for name, param in _check_model(model).named_parameters():
        score = np.abs(param.data) if p == 1 else np.abs(param.data.astype(np.float64)) ** p
        if normalizer == "lamp":
            score = lamp_normalise(score)
        scores[name] = score.astype(param.data.dtype, copy=False)
    return scores


def random(model: MLP, seed: Seed = 0) -> Scores:
    """``s ~ U(0, 1)`` independently per weight: the baseline every criterion must beat
    (Liu et al. 2022, "The unreasonable effectiveness of random pruning").

    >>> from tinyprune.core.nn import MLP
    >>> bool(np.all(random(MLP([2, 2]), seed=1)["layers.0.W"] == random(MLP([2, 2]), seed=1)["layers.0.W"]))
    True
    """
    generator = rng(seed)
    return {name: generator.random(p.shape).astype(p.data.dtype)
            for name, p in _check_model(model).named_parameters()}


def mean_gradient(model: MLP, X: np.ndarray, y: Any, loss: str = "cross_entropy",
                  batch_size: int = 1000) -> Scores:
    """``g = ∂L/∂w`` of the mean loss ``L = (1/n) Σ_i ℓ_i`` over all calibration rows (signed).

    Computed in batches: ``g = Σ_b (n_b / n) g_b``. Shapes: X (n, d_0), y (n,) -> the parameters' shapes.
    """
    model = _check_model(model)
    X, y = _check_data(model, X, y)
    batch_size = _check_batch_size(batch_size)
    total = {name: np.zeros(p.shape, dtype=np.float64) for name, p in model.named_parameters()}
    for Xb, yb in _batches(X, y, batch_size):
        _, grads = backprop.gradients(model, Xb, yb, loss)
        for name, grad in grads.items():
            total[name] += grad * (Xb.shape[0] / X.shape[0])
    return total


def gradient(model: MLP, X: np.ndarray, y: Any, loss: str = "cross_entropy",
             batch_size: int = 1000) -> Scores:
    """``s = |∂L/∂w|``, the gradient of the mean loss over the calibration data (document, section 3.2:
    "gradient-based pruning"). A weight the loss barely pulls on is deemed unimportant.

    Caveat worth teaching: at a minimum every gradient is near 0, so this is a weak criterion for a
    trained network; it ignores how large the weight itself is (compare ``taylor``).
    Shapes: X (n, d_0), y (n,) -> scores of the parameters' shapes.
    """
    return {name: np.abs(g) for name, g in mean_gradient(model, X, y, loss, batch_size).items()}


def taylor(model: MLP, X: np.ndarray, y: Any, loss: str = "cross_entropy", batch_size: int = 1000) -> Scores:
    """``s = |w · ∂L/∂w|``: the first-order Taylor estimate of the change in loss when ``w`` is set to 0,
    ``L(w=0) - L(w) ≈ -w ∂L/∂w`` (Molchanov et al. 2017; the SNIP saliency of Lee et al. 2019).

    Shapes: X (n, d_0), y (n,) -> scores of the parameters' shapes.
    """
    grads = mean_gradient(model, X, y, loss, batch_size)
    return {name: np.abs(p.data * grads[name]) for name, p in model.named_parameters()}


def hybrid(model: MLP, X: np.ndarray, y: Any, alpha: float = 0.5, loss: str = "cross_entropy",
           batch_size: int = 1000) -> Scores:
    """``s = α · norm(|w|) + (1 - α) · norm(|w · ∂L/∂w|)``: the document's mixed pruning (section 3.2).

    ``norm(s) = s / max(s)`` within each parameter tensor (a layer's scores in [0, 1], its largest at
    exactly 1), so the two scales can be added and layers compared. ``alpha = 1`` is magnitude, ``0``
    is Taylor (each layer-normalised). Shapes: X (n, d_0), y (n,) -> scores of the parameters' shapes.
    """
    alpha = check_fraction("alpha", alpha, include_one=True, meaning="1 = magnitude only, 0 = Taylor only")
    first_order = taylor(model, X, y, loss, batch_size)
    return {name: alpha * _normalise(np.abs(p.data)) + (1 - alpha) * _normalise(first_order[name])
            for name, p in model.named_parameters()}


def hessian_diagonal(model: MLP, X: np.ndarray, y: Any = None, hessian: str = "lecun",
                     loss: str = "cross_entropy", batch_size: int = 1000) -> Scores:
    """``h_ii``, an approximation of the diagonal of the Hessian of the mean loss, for every parameter.

    - ``"lecun"``: LeCun's diagonal recursion (LeCun, Denker & Solla 1990, OBD's own): at the logits
      ``c_k = ∂²ℓ/∂z_k²`` (cross-entropy: ``p_k (1 - p_k)``; the document's squared error on softmax:
      the Gauss–Newton diagonal ``Σ_m J_mk²`` of the softmax Jacobian ``J``); backwards, dropping
      off-diagonal terms and the ``f''(z) ∂ℓ/∂a`` term (0 for ReLU; OBD's Levenberg–Marquardt step drops it
      for any activation), ``c_{l-1,j} = f'(z_j)² Σ_k W_jk² c_{l,k}``; then
      ``h(W_l[j, k]) = mean_i x_ij² c_ik`` and ``h(b_l[k]) = mean_i c_ik``. Exact for the output layer;
      for hidden layers it is *not* the Gauss–Newton diagonal (the dropped cross terms), hence the name.
    - ``"fisher"``: the empirical Fisher diagonal ``mean_i (∂ℓ_i/∂w)²`` (per-sample gradients squared);
      for ``W_l[j, k]`` that is ``mean_i x_ij² δ_ik²``, computed without forming per-sample gradients.
    - ``"layerwise"``: the Hessian of each layer's own squared reconstruction error ``||X W - X W'||²``,
      ``H = 2 X^T X / n`` (OBS for layers, Dong et al. 2017; Frantar & Alistarh 2022), whose diagonal
      ``2 mean_i x_ij²`` is shared by the whole row ``j`` (for a bias, the input is 1: ``h = 2``).

    Shapes: X (n, d_0), y (n,) (not needed for ``"layerwise"``) -> arrays of the parameters' shapes.
    """
    model = _check_model(model)
    hessian = hessian_name(hessian)
    X, y = _check_data(model, X, y, need_y=hessian != "layerwise")
    batch_size = _check_batch_size(batch_size)
    if hessian != "layerwise":
        losses.check_loss_name(loss)
    sums = {name: np.zeros(p.shape, dtype=np.float64) for name, p in model.named_parameters()}
    for Xb, yb in _batches(X, y, batch_size):
        cache = backprop.forward(model, Xb)
        if hessian == "layerwise":
            for index, inputs in enumerate(cache.inputs):
                sums[f"layers.{index}.W"] += 2 * np.sum(inputs.astype(np.float64) ** 2, axis=0)[:, None]
                sums[f"layers.{index}.b"] += 2 * inputs.shape[0]
            continue
        if hessian == "fisher":
            curvatures = [d.astype(np.float64) ** 2 for d in _per_sample_deltas(model, cache, yb, loss)]
        else:
            curvatures = _lecun_curvatures(model, cache, yb, loss)
        for index, (inputs, c) in enumerate(zip(cache.inputs, curvatures)):
            sums[f"layers.{index}.W"] += (inputs.astype(np.float64) ** 2).T @ c
            sums[f"layers.{index}.b"] += c.sum(axis=0)
    return {name: total / X.shape[0] for name, total in sums.items()}


def hessian_name(hessian: Any) -> str:
    """The ``hessian`` option checked: one of ``HESSIANS``, or ``ValueError`` listing the choices."""
    return check_choice("hessian", hessian, HESSIANS)


def _lecun_curvatures(model: MLP, cache: backprop.Cache, yb: Any, loss: str) -> list[np.ndarray]:
    """Per-sample diagonal curvatures ``c_l = ∂²ℓ_i/∂Z_l²`` (LeCun's approximation), layer by layer."""
    p = losses.softmax(cache.logits.astype(np.float64))
    if loss == "cross_entropy":
        c = p * (1 - p)
    else:  # squared error on the softmax outputs: diag(J^T J), J = diag(p) - p p^T
        c = p**2 * ((1 - p) ** 2 + np.sum(p**2, axis=1, keepdims=True) - p**2)
    curvatures = [c]
    for index in range(len(model.layers) - 1, 0, -1):
        W = model.layers[index].W.data.astype(np.float64)
        c = (c @ (W**2).T) * backprop.derivative(cache.Z[index - 1], model.activation) ** 2
        curvatures.append(c)
    return curvatures[::-1]


def obd(model: MLP, X: np.ndarray, y: Any = None, hessian: str = "lecun", loss: str = "cross_entropy",
        batch_size: int = 1000) -> Scores:
    """``s = 1/2 · h_ii · w_i²``: Optimal Brain Damage's saliency (LeCun, Denker & Solla 1990), the
    second-order estimate of the loss increase when ``w_i`` alone is set to 0 at a minimum (where the
    first-order term vanishes). ``h_ii`` is ``hessian_diagonal(..., hessian)``; see there for the three
    choices (``"lecun"``, LeCun's diagonal recursion, by default).
    Shapes: X (n, d_0), y (n,) -> the parameters' shapes.
    """
    diagonal = hessian_diagonal(model, X, y, hessian, loss, batch_size)
    return {name: 0.5 * diagonal[name] * p.data.astype(np.float64) ** 2
            for name, p in model.named_parameters()}


def lamp_normalise(score: np.ndarray) -> np.ndarray:
    """``ŝ_u = s_u / Σ_{v >= u} s_v`` with one layer's scores sorted ascending: LAMP's normaliser.

    Each score's share of what is left in its layer once the smaller ones are gone (Lee et al. 2021);
    the largest gets 1. Ties are ordered by flat index. Shapes: any -> float64 of the same shape.

    >>> lamp_normalise(np.array([1.0, 3.0, 2.0]))          # 1/6, 3/3, 2/5
    array([0.16666667, 1.        , 0.4       ])
    """
    flat = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    ascending = flat[order]
    tail = np.cumsum(ascending[::-1])[::-1]                      # Σ_{v >= u} s_v
    ratio = np.divide(ascending, tail, out=np.zeros_like(tail), where=tail > 0)
    normalised = np.empty_like(ratio)
    normalised[order] = ratio
    return normalised.reshape(np.shape(score))


def lamp(model: MLP) -> Scores:
    """LAMP (Lee et al. 2021, "Layer-adaptive sparsity for the magnitude-based pruning"):
    ``s_u = w_u² / Σ_{v >= u} w_v²`` with a layer's weights sorted by magnitude, ascending.

    Each weight's share of the energy left in its layer once the smaller ones are gone: comparable
    across layers, so one global threshold gives every layer its own sparsity, and every layer keeps its
    largest weight (score 1). ``magnitude(model, p=2, normalizer="lamp")``. Shapes: the parameters'.
    """
    return magnitude(model, 2, "lamp")


def magnitude_activation(model: MLP, X: np.ndarray, y: Any = None, batch_size: int = 1000) -> Scores:
    """``s(W_l[i, j]) = |W_l[i, j]| · mean_n |x_ni|``: a weight's magnitude times the mean absolute value
    of the input it multiplies, over the calibration rows (ShrinkBench's weight-level activation
    criterion, Blalock et al. 2020, "What is the state of neural network pruning?").

    ``x = A_{l-1}`` is layer l's input (the pixels for l = 0); a weight fed by an input that is rarely
    large contributes little to ``Z_l``. A bias's input is the constant 1, so ``s(b_l[j]) = |b_l[j]|``.
    ShrinkBench multiplies by the mean activation; here inputs are pixels in [0, 1] and ReLU outputs, so
    the mean of ``|x|`` is the same number (and stays meaningful for signed inputs). ``y`` is not used.
    Shapes: X (n, d_0) -> scores of the parameters' shapes.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([2, 1], seed=0)
    >>> model.layers[0].W.data[...] = [[2.0], [-3.0]]
    >>> magnitude_activation(model, np.array([[1.0, 0.0], [-3.0, 1.0]]))["layers.0.W"]   # |w| · (2, 0.5)
    array([[4. ],
           [1.5]])
    """
    model = _check_model(model)
    X, _ = _check_data(model, X, need_y=False)
    batch_size = _check_batch_size(batch_size)
    sums = [np.zeros(size) for size in model.sizes[:-1]]          # Σ_n |x_ni| per layer input i
    for Xb, _ in _batches(X, None, batch_size):
        for index, inputs in enumerate(backprop.forward(model, Xb).inputs):
            sums[index] += np.abs(inputs.astype(np.float64)).sum(axis=0)
    scores = {}
    for index, layer in enumerate(model.layers):
        mean_input = sums[index] / X.shape[0]
        scores[f"layers.{index}.W"] = np.abs(layer.W.data.astype(np.float64)) * mean_input[:, None]
        scores[f"layers.{index}.b"] = np.abs(layer.b.data.astype(np.float64))
    return scores


def movement(model: MLP, X: np.ndarray | None = None, y: Any = None, scores: Any = None, epochs: int = 1,
             lr: float = 1e-3, batch_size: int = 128, loss: str = "cross_entropy", seed: Seed = 0) -> Scores:
    """Movement pruning's score (Sanh, Wolf & Rush 2020): ``S = -Σ_t g_t ⊙ W_t``, summed over the steps t
    of fine-tuning, ``g_t = ∂L/∂W`` on step t's batch at the weights ``W_t`` it was computed at.

    ``S`` is large where the weights move away from 0 (``g`` and ``W`` of opposite signs) and negative
    where they shrink towards it; low scores are pruned first, so the weights fine-tuning is pulling to
    0 go, whatever their size. Signed: compare it with ``taylor``, the one-step ``|w · g|``.

    - ``scores``: the sums of a ``movement.MovementScore`` callback passed to your own ``fit`` (or its
      ``.scores`` dict): used as they are, the model is not touched and ``X, y`` are not needed.
    - otherwise a short accumulation on ``X, y``: a deep copy of the model is fine-tuned for ``epochs``
      epochs (default 1) with Adam (``lr``, default 1e-3), batches of ``batch_size`` rows shuffled by
      ``seed``, masks respected, under ``movement.MovementScore``; its sums score the *given* model,
      whose weights are left unchanged. See ``tinyprune.prune.movement.accumulate``.

    Shapes: X (n, d_0), y (n,) -> scores of the parameters' shapes (float64).
    """
    model = _check_model(model)
    if scores is not None:
        return moving.checked_scores(model, scores)
    X, y = _check_data(model, X, y)
    return moving.accumulate(model, X, y, epochs=epochs, lr=lr, batch_size=batch_size, loss=loss, seed=seed)


# ------------------------------------------------------- neuron criteria
def _hidden(model: MLP) -> range:
    return range(len(_check_model(model).layers) - 1)


def neuron_norm(model: MLP, order: int = 2, outgoing: bool = False) -> Scores:
    """``s_j = ||W_l[:, j]||_p`` (the weights into hidden neuron j) or ``||W_{l+1}[j, :]||_p`` (out of it).

    ``order`` 1 or 2 (Li et al. 2017, "Pruning filters for efficient ConvNets", use L1 of the incoming
    filter; the outgoing norm measures how much the next layer listens). Biases are not included.
    Shapes: ``{"layers.l": (d_{l+1},)}`` for every hidden layer l.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([2, 2, 2], seed=0)
    >>> model.layers[0].W.data[...] = [[3.0, 0.0], [4.0, -1.0]]
    >>> neuron_norm(model, 2)["layers.0"]
    array([5., 1.], dtype=float32)
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    scores = {}
    for index in _hidden(model):
        W = model.layers[index + 1].W.data if outgoing else model.layers[index].W.data
        scores[f"layers.{index}"] = np.linalg.norm(W, ord=order, axis=1 if outgoing else 0)
    return scores


def neuron_activation(model: MLP, X: np.ndarray, batch_size: int = 1000) -> Scores:
    """``s_j = mean_i |a_ij|``, the mean absolute activation of hidden neuron j on the calibration rows
    (Hu et al. 2016 use the related fraction of zeros, APoZ). A neuron that is rarely on says little.
    Shapes: X (n, d_0) -> ``{"layers.l": (d_{l+1},)}``.
    """
    model = _check_model(model)
    X, _ = _check_data(model, X, need_y=False)
    batch_size = _check_batch_size(batch_size)
    sums = {f"layers.{i}": np.zeros(model.sizes[i + 1]) for i in _hidden(model)}
    for Xb, _ in _batches(X, None, batch_size):
        cache = backprop.forward(model, Xb)
        for index in _hidden(model):
            sums[f"layers.{index}"] += np.abs(cache.inputs[index + 1]).sum(axis=0)
    return {name: total / X.shape[0] for name, total in sums.items()}


def neuron_taylor(model: MLP, X: np.ndarray, y: Any, loss: str = "cross_entropy",
                  batch_size: int = 1000) -> Scores:
    """``s_j = mean_i |a_ij · ∂ℓ_i/∂a_ij|``: the first-order Taylor estimate of the loss change when the
    activation of hidden neuron j is set to 0, per sample, then averaged (Molchanov et al. 2017).

    ``∂ℓ_i/∂a_l = δ_{l+1} W_{l+1}^T`` with the per-sample ``δ``. Shapes: X (n, d_0), y (n,) ->
    ``{"layers.l": (d_{l+1},)}``.
    """
    model = _check_model(model)
    X, y = _check_data(model, X, y)
    batch_size = _check_batch_size(batch_size)
    sums = {f"layers.{i}": np.zeros(model.sizes[i + 1]) for i in _hidden(model)}
    for Xb, yb in _batches(X, y, batch_size):
        cache = backprop.forward(model, Xb)
        deltas = _per_sample_deltas(model, cache, yb, loss)
        for index in _hidden(model):
            dactivation = deltas[index + 1] @ model.layers[index + 1].W.data.T
            sums[f"layers.{index}"] += np.abs(cache.inputs[index + 1] * dactivation).sum(axis=0)
    return {name: total / X.shape[0] for name, total in sums.items()}


def neuron_random(model: MLP, seed: Seed = 0) -> Scores:
    """``s_j ~ U(0, 1)`` per hidden neuron: the structured baseline. Shapes: ``{"layers.l": (d_{l+1},)}``."""
    generator = rng(seed)
    return {f"layers.{i}": generator.random(model.sizes[i + 1]) for i in _hidden(model)}


def _alive_units(model: MLP, index: int) -> np.ndarray:
    """Bool per hidden unit of layer ``index``: False once its incoming column and bias are both masked."""
    W, b = model.layers[index].W, model.layers[index].b
    if W.mask is None or b.mask is None:
        return np.ones(b.shape, dtype=bool)
    return W.mask.any(axis=0) | b.mask


def neuron_fpgm(model: MLP) -> Scores:
    """FPGM (He et al. 2019, "Filter pruning via geometric median"): ``s_j = Σ_k ||w_j - w_k||_2`` over
    the other living units k of the layer, ``w_j = W_l[:, j]`` the weights into unit j (biases left out).

    The unit with the smallest sum is nearest the layer's geometric median: the others, together,
    can stand in for it, so it is the most redundant, whatever its norm. Units already removed are left
    out of the sums (their score is 0). Distances come from the Gram matrix,
    ``||w_j - w_k||² = ||w_j||² + ||w_k||² - 2 w_j · w_k`` (float64). Shapes: ``{"layers.l": (d_{l+1},)}``.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([2, 3, 2], seed=0)
    >>> model.layers[0].W.data[...] = [[0.0, 3.0, 0.0], [0.0, 0.0, 4.0]]   # w = (0,0), (3,0), (0,4)
    >>> neuron_fpgm(model)["layers.0"]                                       # 3+4, 3+5, 4+5
    array([7., 8., 9.])
    """
    scores = {}
    for index in _hidden(model):
        columns = model.layers[index].W.data.T.astype(np.float64)        # (h, d_in): w_j per row
        alive = _alive_units(model, index)
        squares = np.einsum("jd,jd->j", columns, columns)
        distances = np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2 * columns @ columns.T, 0))
        np.fill_diagonal(distances, 0)
        scores[f"layers.{index}"] = np.where(alive, distances[:, alive].sum(axis=1), 0.0)
    return scores


def neuron_obd(model: MLP, X: np.ndarray, y: Any, hessian: str = "lecun", loss: str = "cross_entropy",
               batch_size: int = 1000) -> Scores:
    """OBD for whole units: ``s_j = Σ_i ½ h(W_l[i, j]) W_l[i, j]² + ½ h(b_l[j]) b_l[j]²``, the sum of the
    OBD saliencies (``obd``) of the weights into hidden unit j and of its bias.

    OBD's own additivity assumption (a diagonal Hessian: no cross terms) makes the saliency of removing
    several weights the sum of theirs; the unit's outgoing weights are not counted (with its activation
    gone they no longer matter, whatever their value). ``hessian`` as in ``hessian_diagonal`` (LeCun's
    recursion by default). Shapes: X (n, d_0), y (n,) -> ``{"layers.l": (d_{l+1},)}``.
    """
    saliency = obd(model, X, y, hessian, loss, batch_size)
    return {f"layers.{i}": saliency[f"layers.{i}.W"].sum(axis=0) + saliency[f"layers.{i}.b"]
            for i in _hidden(model)}
