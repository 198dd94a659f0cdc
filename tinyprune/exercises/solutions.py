"""Reference solutions of the exercises in ``student.py``: NumPy only, written from the equations.

They do not call tinyprune (the graders compare them with tinyprune's functions, so a solution that
called them would prove nothing). ``python -m tinyprune.exercises check tinyprune/exercises/solutions.py``
passes every grader; the test suite checks that it still does.
"""

from __future__ import annotations

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))      # the shift keeps e^z finite
    return e / e.sum(axis=1, keepdims=True)


def linear_forward(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``Z = A_prev W + b``. Shapes: (n, d), (d, h), (h,) -> (n, h)."""
    return A_prev @ W + b


def layer_backward(delta: np.ndarray, A_prev: np.ndarray, W: np.ndarray,
                   Z_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dW = A_prevᵀ δ``, ``db = Σ_rows δ``, ``δ_prev = (δ Wᵀ) ⊙ relu'(Z_prev)``."""
    return A_prev.T @ delta, delta.sum(axis=0), (delta @ W.T) * (Z_prev > 0)


def softmax_cross_entropy_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(P - Y) / n``."""
    grad = _softmax(z)
    grad[np.arange(len(y)), y] -= 1
    return grad / len(y)


def squared_error_softmax_grad(z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``P ⊙ (g - Σ_j g_j p_j)`` with ``g = (P - Y) / n``."""
    p = _softmax(z)
    g = (p - Y) / len(z)
    return p * (g - np.sum(g * p, axis=1, keepdims=True))


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum over the leading axes broadcasting added, then over the stretched size-1 axes (kept)."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    return grad.sum(axis=stretched, keepdims=True)


def masked_sgd_step(w: np.ndarray, grad: np.ndarray, velocity: np.ndarray, mask: np.ndarray,
                    lr: float, momentum: float) -> tuple[np.ndarray, np.ndarray]:
    """``u ← μ (u ⊙ M) + g ⊙ M``, ``w ← (w - α u) ⊙ M`` (``u`` = ``velocity``)."""
    velocity = momentum * (velocity * mask) + grad * mask
    return (w - lr * velocity) * mask, velocity


def masked_adam_step(w: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                     mask: np.ndarray, lr: float, beta1: float, beta2: float,
                     eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam with bias correction, the gradient and both moments masked."""
    g = grad * mask
    m = beta1 * (m * mask) + (1 - beta1) * g
    v = beta2 * (v * mask) + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return (w - lr * m_hat / (np.sqrt(v_hat) + eps)) * mask, m, v


def masked_step_property(step) -> None:
    """For any inputs, the pruned entries of the new w and velocity are exactly 0."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    values = st.floats(-10, 10, allow_nan=False, width=64)

    @settings(max_examples=25, deadline=None, derandomize=True, database=None)
    @given(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4).flatmap(lambda shape: st.tuples(
        *(hnp.arrays(np.float64, shape, elements=values) for _ in range(3)), hnp.arrays(bool, shape))),
        st.floats(1e-3, 1.0), st.floats(0.0, 0.99))
    def law(arrays: tuple, lr: float, momentum: float) -> None:
        w, grad, velocity, mask = arrays
        new_w, new_velocity = step((w * mask).copy(), grad.copy(), velocity.copy(), mask.copy(), lr, momentum)
        assert np.all(np.asarray(new_w)[~mask] == 0), "a pruned weight moved"
        assert np.all(np.asarray(new_velocity)[~mask] == 0), "a pruned weight's velocity lives on"
    law()


def global_magnitude_masks(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Rank all magnitudes together (a stable sort breaks ties by position); prune the first k."""
    magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
    k = round(sparsity * magnitudes.size)
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[np.argsort(magnitudes, kind="stable")[:k]] = False
    bounds = np.cumsum([0] + [w.size for w in weights])
    return [keep[start:stop].reshape(w.shape) for w, start, stop in zip(weights, bounds[:-1], bounds[1:])]


def obd_saliency(W: np.ndarray, H_diag: np.ndarray) -> np.ndarray:
    """``½ H_qq w_q²``."""
    return 0.5 * H_diag * W**2


def pruned_layer_error(X: np.ndarray, W: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``ΔZ = -X ΔW``, ``ΔW = W ⊙ (1 - M)``; ``tr(ΔWᵀ R ΔW)`` and ``Σ_jk R_jj ΔW_jk²``, ``R = XᵀX / n``."""
    removed = W * ~mask
    R = X.T @ X / len(X)
    exact = float(np.trace(removed.T @ R @ removed))
    return -(X @ removed), exact, float(np.sum(np.diag(R)[:, None] * removed**2))


def pruned_unit_variance(X: np.ndarray, W: np.ndarray,
                         mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w_kᵀ Cov(X) w_k`` for W and for ``W ⊙ M``; ``φ_k = Σ_kept σ_j² W_jk² / Σ_j σ_j² W_jk²``."""
    centred = X - X.mean(axis=0)
    covariance = centred.T @ centred / len(X)
    kept = W * mask
    variances = np.diag(covariance)                        # σ_j²
    return (np.sum(W * (covariance @ W), axis=0), np.sum(kept * (covariance @ kept), axis=0),
            (variances @ kept**2) / (variances @ W**2))


def obs_prune_one(w: np.ndarray, H_inv: np.ndarray,
                  prunable: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``q = argmin w_q² / [H⁻¹]_qq`` over the prunable; ``w ← w - (w_q / [H⁻¹]_qq) H⁻¹ e_q``;
    ``H⁻¹ ← H⁻¹ - H⁻¹ e_q e_qᵀ H⁻¹ / [H⁻¹]_qq``; entry q dropped from both."""
    diagonal = np.diag(H_inv)
    q = int(np.argmin(np.where(prunable, w**2 / diagonal, np.inf)))
    column = H_inv[:, q]
    new_w = w - (w[q] / diagonal[q]) * column
    new_H_inv = H_inv - np.outer(column, column * (1 / diagonal[q]))     # one division, then products
    keep = np.arange(w.size) != q
    return new_w[keep], new_H_inv[np.ix_(keep, keep)], q


def reconstruct_layer(A: np.ndarray, Z: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One normal-equation solve per unit, over its surviving inputs and the bias."""
    n, d = A.shape
    A_tilde = np.hstack([A, np.ones((n, 1))])
    G, C = A_tilde.T @ A_tilde / n, A_tilde.T @ Z / n
    W, b = np.zeros((d, Z.shape[1])), np.zeros(Z.shape[1])
    for j in range(Z.shape[1]):                       # one small system per unit (h of them, not n)
        rows = np.append(np.flatnonzero(mask[:, j]), d)
        solution = np.linalg.solve(G[np.ix_(rows, rows)], C[rows, j])
        W[rows[:-1], j], b[j] = solution[:-1], solution[-1]
    return W, b


def distillation_kl_grad(z_student: np.ndarray, z_teacher: np.ndarray, T: float) -> np.ndarray:
    """``T (p⁽²⁾ - p⁽¹⁾) / n``."""
    return T * (_softmax(z_student / T) - _softmax(z_teacher / T)) / len(z_student)


def remove_neuron(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,
                  j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fold the constant ``relu(b1[j]) W2[j]`` into b2 if the neuron has no inputs; drop column/row j."""
    if not W1[:, j].any():
        b2 = b2 + max(b1[j], 0.0) * W2[j]
    elif W2[j].any():
        raise ValueError(f"neuron {j} has inputs and outputs: removing it would change the outputs")
    return np.delete(W1, j, axis=1), np.delete(b1, j), np.delete(W2, j, axis=0), b2


def layer_flops(W: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """``2 d_in d_out + d_out`` and ``2 nnz(W) + alive``, alive = a nonzero weight or bias in the column."""
    alive = np.any(W != 0, axis=0) | (b != 0)
    return 2 * W.size + b.size, 2 * int(np.count_nonzero(W)) + int(np.count_nonzero(alive))
