"""Your exercises: write each function's body, then grade them with ``python -m tinyprune.exercises check .``

Copy this file into a folder of your own first (``python -m tinyprune.exercises init my_answers``).
Every function below is a step of the source document that notebooks 01-09 derive; its docstring gives
the equation and the shapes, in the notation of ``notebooks/README.md`` (rows are samples: ``Z = A W + b``).
Every function returns new arrays (it never changes its inputs) in the inputs' floating dtype
(float32 in, float32 out; float64 in, float64 out). Use NumPy only, and no loops over samples or
weights (the grader accepts them, but they are slow). The grader compares each function with tinyprune's
own and with finite differences on many small random inputs, and prints the first input that fails.
``python -m tinyprune.exercises list`` says which notebook teaches each one.
"""

from __future__ import annotations

import numpy as np


def linear_forward(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pre-activation of one layer: ``Z = A_prev W + b`` (b added to every row).

    Shapes: A_prev (n, d), W (d, h), b (h,) -> Z (n, h).  Notebook 01.
    """
    raise NotImplementedError("linear_forward")


def layer_backward(delta: np.ndarray, A_prev: np.ndarray, W: np.ndarray,
                   Z_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layer of back-propagation: from ``δ_l = ∂L/∂Z_l`` to ``dW_l``, ``db_l`` and ``δ_{l-1}``.

    ``dW_l = A_{l-1}ᵀ δ_l``,  ``db_l = Σ_rows δ_l``,  ``δ_{l-1} = (δ_l W_lᵀ) ⊙ relu'(Z_{l-1})``
    with ``relu'(z) = 1 if z > 0 else 0``.
    Shapes: delta (n, h), A_prev (n, d), W (d, h), Z_prev (n, d) -> dW (d, h), db (h,), delta_prev (n, d).
    Notebook 02.
    """
    raise NotImplementedError("layer_backward")


def softmax_cross_entropy_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``∂L/∂z`` of the mean softmax cross-entropy ``L = -(1/n) Σ_i log p_{i, y_i}``, ``p = softmax(z)``.

    ``∂L/∂z = (P - Y) / n`` with ``Y`` the one-hot rows of the labels y. Compute the softmax stably
    (subtract each row's maximum first).
    Shapes: z (n, K), y (n,) integers in 0..K-1 -> (n, K).  Notebook 02.
    """
    raise NotImplementedError("softmax_cross_entropy_grad")


def squared_error_softmax_grad(z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``∂L/∂z`` of the document's squared error on probabilities, ``L = 1/(2n) Σ_i ||p_i - Y_i||²``.

    With ``p = softmax(z)``, ``g = ∂L/∂p = (P - Y) / n`` and the softmax Jacobian ``diag(p) - p pᵀ`` of
    each row: ``∂L/∂z = P ⊙ (g - Σ_j g_j p_j)`` (the sum taken row by row).
    Shapes: z (n, K), Y (n, K) one-hot (or any targets) -> (n, K).  Notebooks 01, 02.
    """
    raise NotImplementedError("squared_error_softmax_grad")


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The gradient of an operand of ``shape`` that NumPy broadcast to ``grad.shape`` (``b`` in ``XW + b``).

    A value broadcasting used in many places receives the sum of their gradients: sum ``grad`` over
    the leading axes broadcasting added, and over every axis where ``shape`` has size 1 but ``grad``
    does not, keeping that axis (size 1). For ``b`` of shape ``(h,)`` in ``Z = XW + b`` this is
    ``∂L/∂b_j = Σ_i ∂L/∂Z_ij``, the ``db = Σ_rows δ`` of notebook 02.
    Shapes: grad (any), shape (broadcasts to grad.shape) -> (shape).  Notebook 03.
    """
    raise NotImplementedError("unbroadcast")


def masked_sgd_step(w: np.ndarray, grad: np.ndarray, velocity: np.ndarray, mask: np.ndarray,
                    lr: float, momentum: float) -> tuple[np.ndarray, np.ndarray]:
    """One SGD step with momentum that keeps pruned weights (``mask == False``) at exactly 0.

    ``g = grad ⊙ M``;  ``u ← μ (u ⊙ M) + g``;  ``w ← (w - α u) ⊙ M`` (``u`` = ``velocity``). The velocity
    is masked too: a velocity left over from before pruning must not live on under the mask.
    Shapes: w, grad, velocity (any shape, the same), mask bool of that shape -> (w, velocity).
    Return new arrays.  Notebooks 04, 07.
    """
    raise NotImplementedError("masked_sgd_step")


def masked_adam_step(w: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                     mask: np.ndarray, lr: float, beta1: float, beta2: float,
                     eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step (step number ``t``, counting from 1) that keeps pruned weights and their moments at 0.

    ``g = grad ⊙ M``;  ``m ← β₁ (m ⊙ M) + (1-β₁) g``;  ``v ← β₂ (v ⊙ M) + (1-β₂) g²``;
    ``m̂ = m / (1-β₁ᵗ)``, ``v̂ = v / (1-β₂ᵗ)``;  ``w ← (w - α m̂ / (√v̂ + ε)) ⊙ M``.
    Shapes: w, grad, m, v (one shape), mask bool of that shape -> (w, m, v), new arrays.  Notebook 04.
    """
    raise NotImplementedError("masked_adam_step")


def masked_step_property(step) -> None:
    """Write a property test (with hypothesis) of the law every masked optimizer step must obey.

    ``step(w, grad, velocity, mask, lr, momentum) -> (w, velocity)`` is somebody's ``masked_sgd_step``.
    For any weights, gradient, velocity (left over from before pruning: nonzero anywhere), bool mask,
    ``lr`` and ``momentum``, the returned weights and velocity must be exactly 0 wherever the mask is
    False. Draw the inputs with ``hypothesis`` (``@given`` on an inner function, strategies from
    ``hypothesis.strategies``, ``hypothesis.extra.numpy`` or ``tinyprune.testing``), call ``step``, and
    ``assert`` the law; then call the inner function. It must pass for a correct step and raise
    ``AssertionError`` for one that breaks the law (the grader tries both kinds). Notebook 04.
    """
    raise NotImplementedError("masked_step_property")


def global_magnitude_masks(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Prune exactly ``N_p = round(s · N_w)`` weights of all arrays together, the smallest ``|w|`` first.

    ``N_w`` is the total number of entries of all the arrays; one threshold for all of them (global, not
    layer by layer). Every pruned ``|w|`` must be <= every kept ``|w|``; among equal magnitudes at the
    threshold, prune any of them, but the count must be exact.
    Shapes: a list of arrays -> a list of bool arrays of the same shapes (True = keep).  Notebook 05.
    """
    raise NotImplementedError("global_magnitude_masks")


def obd_saliency(W: np.ndarray, H_diag: np.ndarray) -> np.ndarray:
    """Optimal Brain Damage's saliency ``κ_q = ½ H_qq w_q²``: the loss rise when ``w_q`` alone is set to 0.

    At a minimum the gradient vanishes, so the Taylor series of the loss starts at the second order;
    keeping only the Hessian's diagonal leaves ``½ H_qq w_q²``.
    Shapes: W (any), H_diag (the same) -> (the same).  Notebook 05.
    """
    raise NotImplementedError("obd_saliency")


def pruned_layer_error(X: np.ndarray, W: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """What pruning a layer fed by ``X`` changes in its output: ``ΔZ``, its energy, a diagonal estimate.

    With the removed weights ``ΔW = W ⊙ (1 - M)`` (``M`` = ``mask``, True = kept), the pruned layer
    computes ``X (W ⊙ M)``, so ``ΔZ = X (W ⊙ M) - X W = -X ΔW`` (pruned minus dense; the bias cancels).
    With ``R = XᵀX / n``: ``(1/n) ||ΔZ||_F² = tr(ΔWᵀ R ΔW)`` exactly, and keeping only the diagonal of
    ``R`` estimates it by ``Σ_jk R_jj ΔW_jk²`` (each removed weight alone, as OBD's saliency does).
    Shapes: X (n, d), W (d, h), mask (d, h) bool -> (ΔZ (n, h), exact, diagonal: two floats).  Notebook 06.
    """
    raise NotImplementedError("pruned_layer_error")


def pruned_unit_variance(X: np.ndarray, W: np.ndarray,
                         mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How pruning shrinks the spread of every unit's pre-activation ``z_k`` over the rows of ``X``.

    ``z_k = Σ_j x_j W_jk + b_k``, so ``Var(z_k) = w_kᵀ Cov(X) w_k`` for the column ``w_k`` of W, with
    ``Cov(X) = (1/n) Σ_i (x_i - x̄)ᵀ (x_i - x̄)`` (a variance over the rows: divide by n); after pruning,
    the same with ``w_k ⊙ m_k`` (``m_k`` the column of ``mask``, True = kept). If the inputs were
    uncorrelated, with variances ``σ_j²``, pruning would keep the fraction
    ``φ_k = Σ_{j kept} σ_j² W_jk² / Σ_j σ_j² W_jk²`` of the variance.
    Shapes: X (n, d), W (d, h), mask (d, h) bool -> (Var before (h,), Var after (h,), φ (h,)).  Notebook 06.
    """
    raise NotImplementedError("pruned_unit_variance")


def obs_prune_one(w: np.ndarray, H_inv: np.ndarray,
                  prunable: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One step of Optimal Brain Surgeon on one unit: remove the weight that costs least, move the rest,
    and take the removed weight out of the inverse Hessian.

    For the quadratic loss ``E(w') = ½ (w' - w)ᵀ H (w' - w)``, removing ``w_q`` costs at least
    ``L_q = w_q² / (2 [H⁻¹]_qq)``. Choose ``q = argmin L_q`` among the weights with ``prunable[q]`` True
    (the first of equal costs), move all weights by ``δw = -(w_q / [H⁻¹]_qq) H⁻¹ e_q`` (then
    ``w_q + δw_q = 0``) and update ``H⁻¹ ← H⁻¹ - H⁻¹ e_q e_qᵀ H⁻¹ / [H⁻¹]_qq``; return both without
    entry q (the new ``H⁻¹`` is the inverse of ``H`` without row and column q: the next step's). tinyprune's
    OBS repeats this step, unit by unit, with ``prunable`` False for the bias.
    Shapes: w (p,), H_inv (p, p) symmetric positive definite, prunable bool (p,)
    -> (w (p-1,), H_inv (p-1, p-1), q).  Notebook 08.
    """
    raise NotImplementedError("obs_prune_one")


def reconstruct_layer(A: np.ndarray, Z: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares refit of one layer's surviving weights and bias to the dense layer's output ``Z``.

    For every unit j with surviving inputs ``S_j = {i : M_ij}``:
    ``min_{w, b_j} (1/n) ||A_{S_j} w + b_j - Z_{:, j}||²``, i.e. ``(ÃᵀÃ/n)_{SS} [w; b_j] = (ÃᵀZ_{:, j}/n)_S``
    with ``Ã = [A, 1]``; pruned weights stay exactly 0.
    Shapes: A (n, d), Z (n, h), mask (d, h) bool -> W (d, h), b (h,).  Notebook 08.
    """
    raise NotImplementedError("reconstruct_layer")


def distillation_kl_grad(z_student: np.ndarray, z_teacher: np.ndarray, T: float) -> np.ndarray:
    """``∂L/∂z⁽²⁾`` of the distillation loss ``L = (T²/n) Σ_i KL(p⁽¹⁾_i || p⁽²⁾_i)`` with temperature T.

    ``(1)`` is the dense model (the teacher), ``(2)`` the pruned one (the student, whose logits
    ``z_student`` = ``z⁽²⁾`` move); ``p⁽²⁾ = softmax(z⁽²⁾ / T)``, ``p⁽¹⁾ = softmax(z⁽¹⁾ / T)``. The result is
    ``T (p⁽²⁾ - p⁽¹⁾) / n`` (the T² of the loss times the 1/T of the chain rule through ``z / T``).
    Shapes: z_student, z_teacher (n, K), T > 0 -> (n, K).  Notebook 08.
    """
    raise NotImplementedError("distillation_kl_grad")


def remove_neuron(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,
                  j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Delete hidden neuron j (column j of W1 and b1, row j of W2) without changing the outputs.

    Allowed when the neuron is dead: its outgoing row ``W2[j]`` is all 0 (nobody listens), or its
    incoming column ``W1[:, j]`` is all 0, so its activation is the constant ``relu(b1[j])``, which must
    first be folded into the next bias: ``b2 ← b2 + relu(b1[j]) W2[j]``.
    Shapes: W1 (d, h), b1 (h,), W2 (h, K), b2 (K,) -> (d, h-1), (h-1,), (h-1, K), (K,).  Notebook 09.
    """
    raise NotImplementedError("remove_neuron")


def layer_flops(W: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The floating-point operations of one layer ``z = x W + b`` for one input row ``x``.

    Dense: a multiply and an add per weight and an add per bias, ``2 · d_in · d_out + d_out``, zeros
    included (what a dense matrix product does). Effective: only what cannot be skipped,
    ``2 · nnz(W) + a``, where ``a`` counts the *alive* output neurons: those with a nonzero incoming
    weight or a nonzero bias (a neuron whose column of W and bias are all zero outputs 0 for free; one
    with only a bias still adds it). The ReLU's comparisons are not counted.
    Shapes: W (d_in, d_out), b (d_out,) -> (dense, effective): two ints.  Notebook 09.
    """
    raise NotImplementedError("layer_flops")
