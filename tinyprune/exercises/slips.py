"""Known slips: deliberately wrong solutions, each the mistake a real student makes, with its name.

The graders use them twice. The test suite proves that every grader catches every slip here, and when
a student's answer fails, ``graders.name_the_slip`` runs these on the same input: if one of them gives
the student's very answer, the message says which mistake it looks like. Every hole closed in a grader
adds its slip here. NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinyprune.exercises import solutions


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward_with_relu(A_prev, W, b):
    return np.maximum(A_prev @ W + b, 0)


def backward_transposed(delta, A_prev, W, Z_prev):
    return delta.T @ A_prev, delta.sum(axis=0), (delta @ W.T) * (Z_prev > 0)


def backward_without_relu(delta, A_prev, W, Z_prev):
    return A_prev.T @ delta, delta.sum(axis=0), delta @ W.T


def cross_entropy_grad_sum(z, y):
    grad = _softmax(z)
    grad[np.arange(len(y)), y] -= 1
    return grad


def cross_entropy_without_max_shift(z, y):
    e = np.exp(z)
    grad = e / e.sum(axis=1, keepdims=True)
    grad[np.arange(len(y)), y] -= 1
    return grad / len(y)


def cross_entropy_in_float32(z, y):
    grad = _softmax(z.astype(np.float32))
    grad[np.arange(len(y)), y] -= 1
    return (grad / len(y)).astype(z.dtype)


def cross_entropy_always_float64(z, y):
    return solutions.softmax_cross_entropy_grad(z.astype(np.float64), y)


def squared_error_grad_without_half(z, Y):
    p = _softmax(z)
    g = 2 * (p - Y) / len(z)
    return p * (g - np.sum(g * p, axis=1, keepdims=True))


def squared_error_grad_without_jacobian(z, Y):
    return (_softmax(z) - Y) / len(z)


def unbroadcast_leading_axes_only(grad, shape):
    return grad.sum(axis=tuple(range(grad.ndim - len(shape))))          # the size-1 axes stay stretched


def unbroadcast_dropping_the_axes(grad, shape):
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    return grad.sum(axis=stretched)                                     # no keepdims: (5, 1) becomes (5,)


def unbroadcast_by_the_mean(grad, shape):
    summed = solutions.unbroadcast(grad, shape)
    return summed * (summed.size / grad.size)                           # averages the copies' gradients


def sgd_state_unmasked(w, grad, velocity, mask, lr, momentum):
    velocity = momentum * velocity + grad * mask
    return (w - lr * velocity) * mask, velocity


def sgd_in_place(w, grad, velocity, mask, lr, momentum):
    velocity *= momentum * mask
    velocity += grad * mask
    w -= lr * velocity
    w *= mask
    return w, velocity


def adam_state_unmasked(w, grad, m, v, t, mask, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return (w - lr * m / (1 - beta1**t) / (np.sqrt(v / (1 - beta2**t)) + eps)) * mask, m, v


def adam_without_bias_correction(w, grad, m, v, t, mask, lr, beta1, beta2, eps):
    g = grad * mask
    m = beta1 * (m * mask) + (1 - beta1) * g
    v = beta2 * (v * mask) + (1 - beta2) * g**2
    return (w - lr * m / (np.sqrt(v) + eps)) * mask, m, v


def adam_eps_inside_sqrt(w, grad, m, v, t, mask, lr, beta1, beta2, eps):
    g = grad * mask
    m = beta1 * (m * mask) + (1 - beta1) * g
    v = beta2 * (v * mask) + (1 - beta2) * g**2
    return (w - lr * (m / (1 - beta1**t)) / np.sqrt(v / (1 - beta2**t) + eps)) * mask, m, v


def property_checks_only_w(step):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=30, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.floats(-5, 5), min_size=3, max_size=3),
           st.lists(st.booleans(), min_size=3, max_size=3))
    def law(values, keep):
        mask = np.array(keep)
        w, _ = step(np.array(values) * mask, np.ones(3), np.ones(3), mask, 0.1, 0.9)
        assert np.all(w[~mask] == 0)
    law()


def property_that_asserts_nothing(step):
    step(np.zeros(2), np.ones(2), np.ones(2), np.array([True, False]), 0.1, 0.9)


def property_that_always_fails(step):
    raise AssertionError("the law is broken")


def magnitude_layerwise(weights, sparsity):
    return [solutions.global_magnitude_masks([w], sparsity)[0] for w in weights]


def magnitude_signed(weights, sparsity):
    return solutions.global_magnitude_masks([np.maximum(w, 0) for w in weights], sparsity)


def magnitude_threshold_prunes_ties(weights, sparsity):
    magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
    k = round(sparsity * magnitudes.size)
    if k == 0:
        return [np.ones(w.shape, dtype=bool) for w in weights]
    threshold = np.sort(magnitudes)[k - 1]
    return [np.abs(w) > threshold for w in weights]


def obd_without_half(W, H_diag):
    return H_diag * W**2


def layer_error_of_the_kept_weights(X, W, mask):
    kept = W * mask                                        # ΔW taken as the weights kept, not removed
    R = X.T @ X / len(X)
    return -(X @ kept), float(np.trace(kept.T @ R @ kept)), float(np.sum(np.diag(R)[:, None] * kept**2))


def layer_error_dense_minus_pruned(X, W, mask):
    return (X @ (W * ~mask), *solutions.pruned_layer_error(X, W, mask)[1:])      # ΔZ = +X ΔW


def layer_error_without_the_mean(X, W, mask):
    delta_Z, exact, diagonal = solutions.pruned_layer_error(X, W, mask)
    return delta_Z, exact * len(X), diagonal * len(X)      # R = XᵀX, not XᵀX / n


def layer_error_without_cross_terms(X, W, mask):
    delta_Z, _, diagonal = solutions.pruned_layer_error(X, W, mask)
    return delta_Z, diagonal, diagonal                     # the removed weights' errors added up alone


def layer_error_always_float64(X, W, mask):
    delta_Z, exact, diagonal = solutions.pruned_layer_error(X.astype(np.float64), W.astype(np.float64), mask)
    return delta_Z, exact, diagonal                        # ΔZ stays float64 for float32 inputs


def unit_variance_without_covariance(X, W, mask):
    variances = X.var(axis=0)                              # Σ_j σ_j² W_jk²: correlations ignored
    return variances @ W**2, variances @ (W * mask) ** 2, solutions.pruned_unit_variance(X, W, mask)[2]


def unit_variance_not_centred(X, W, mask):
    moments = X.T @ X / len(X)                             # E[x xᵀ], not Cov(X): the mean is not removed
    kept = W * mask
    return (np.sum(W * (moments @ W), axis=0), np.sum(kept * (moments @ kept), axis=0),
            solutions.pruned_unit_variance(X, W, mask)[2])


def unit_variance_over_n_minus_1(X, W, mask):
    before, after, phi = solutions.pruned_unit_variance(X, W, mask)
    return before * len(X) / (len(X) - 1), after * len(X) / (len(X) - 1), phi     # np.cov's default


def unit_variance_phi_without_sigma(X, W, mask):
    before, after, _ = solutions.pruned_unit_variance(X, W, mask)
    return before, after, np.sum((W * mask) ** 2, axis=0) / np.sum(W**2, axis=0)


def _obs_step(w, H_inv, q, factor):
    column = H_inv[:, q]
    keep = np.arange(w.size) != q
    new_H_inv = H_inv - np.outer(column, column / H_inv[q, q])
    return (w - factor * column)[keep], new_H_inv[np.ix_(keep, keep)], q


def _cheapest(w, H_inv, prunable):
    return int(np.argmin(np.where(prunable, w**2 / np.diag(H_inv), np.inf)))


def obs_without_division(w, H_inv, prunable):
    q = _cheapest(w, H_inv, prunable)
    return _obs_step(w, H_inv, q, w[q])


def obs_by_magnitude(w, H_inv, prunable):
    q = int(np.argmin(np.where(prunable, np.abs(w), np.inf)))
    return _obs_step(w, H_inv, q, w[q] / H_inv[q, q])


def obs_last_of_equal_costs(w, H_inv, prunable):
    costs = np.where(prunable, w**2 / np.diag(H_inv), np.inf)
    q = int(np.flatnonzero(costs == costs.min())[-1])
    return _obs_step(w, H_inv, q, w[q] / H_inv[q, q])


def obs_inverse_not_updated(w, H_inv, prunable):
    q = _cheapest(w, H_inv, prunable)
    new_w, _, q = _obs_step(w, H_inv, q, w[q] / H_inv[q, q])
    keep = np.arange(w.size) != q
    return new_w, H_inv[np.ix_(keep, keep)], q


def obs_ignores_prunable(w, H_inv, prunable):
    q = _cheapest(w, H_inv, np.ones(w.size, dtype=bool))
    return _obs_step(w, H_inv, q, w[q] / H_inv[q, q])


def reconstruct_then_mask(A, Z, mask):
    W, b = solutions.reconstruct_layer(A, Z, np.ones_like(mask))
    return W * mask, b


def reconstruct_without_bias(A, Z, mask):
    W = np.zeros(mask.shape)
    for j in range(Z.shape[1]):
        rows = np.flatnonzero(mask[:, j])
        W[rows, j] = np.linalg.lstsq(A[:, rows], Z[:, j], rcond=None)[0]
    return W, np.zeros(Z.shape[1])


def distill_t_squared(z_student, z_teacher, T):
    return T * T * (_softmax(z_student / T) - _softmax(z_teacher / T)) / len(z_student)


def distill_without_max_shift(z_student, z_teacher, T):
    def softmax(z):
        e = np.exp(z / T)
        return e / e.sum(axis=1, keepdims=True)
    return T * (softmax(z_student) - softmax(z_teacher)) / len(z_student)


def remove_without_folding(W1, b1, W2, b2, j):
    return np.delete(W1, j, axis=1), np.delete(b1, j), np.delete(W2, j, axis=0), b2



def flops_without_the_add(W, b):
    alive = np.any(W != 0, axis=0) | (b != 0)
    return W.size + b.size, int(np.count_nonzero(W)) + int(np.count_nonzero(alive))    # multiplies only


def flops_alive_by_weights_only(W, b):
    alive = np.any(W != 0, axis=0)                         # a neuron with only its bias left is not dead
    return 2 * W.size + b.size, 2 * int(np.count_nonzero(W)) + int(np.count_nonzero(alive))


def flops_every_bias(W, b):
    return 2 * W.size + b.size, 2 * int(np.count_nonzero(W)) + b.size       # dead neurons' biases counted

SLIPS: dict[str, list[tuple[str, Callable]]] = {
    "linear_forward": [("returns A = relu(Z), not the pre-activation Z", forward_with_relu)],
    "layer_backward": [("dW = δᵀA_prev: the product transposed", backward_transposed),
                       ("δ_prev forgets the factor relu'(Z_prev)", backward_without_relu)],
    "softmax_cross_entropy_grad": [
        ("forgets the 1/n of the mean", cross_entropy_grad_sum),
        ("softmax without subtracting each row's maximum (overflows for large logits)",
         cross_entropy_without_max_shift),
        ("computes in float32 on float64 inputs (rounds to ~7 digits)", cross_entropy_in_float32),
        ("returns float64 for float32 inputs", cross_entropy_always_float64)],
    "squared_error_softmax_grad": [
        ("L without the ½: the gradient doubled", squared_error_grad_without_half),
        ("stops at ∂L/∂p: the softmax Jacobian is missing", squared_error_grad_without_jacobian)],
    "unbroadcast": [
        ("sums the leading axes only: a size-1 axis stays stretched", unbroadcast_leading_axes_only),
        ("sums a stretched axis away instead of keeping it (keepdims)", unbroadcast_dropping_the_axes),
        ("averages over the copies instead of summing their gradients", unbroadcast_by_the_mean)],
    "masked_sgd_step": [("the velocity is not masked: it lives on under the mask", sgd_state_unmasked),
                        ("changes the caller's w and velocity in place", sgd_in_place)],
    "masked_adam_step": [
        ("the moments m, v are not masked", adam_state_unmasked),
        ("no bias correction m/(1-β₁ᵗ), v/(1-β₂ᵗ)", adam_without_bias_correction),
        ("ε inside the square root", adam_eps_inside_sqrt)],
    "masked_step_property": [
        ("checks only w, not the velocity, so a step that lets the velocity live on passes",
         property_checks_only_w),
        ("asserts nothing: every step passes it", property_that_asserts_nothing),
        ("fails even for a correct step", property_that_always_fails)],
    "global_magnitude_masks": [
        ("one threshold per array (layer-wise), not one for all", magnitude_layerwise),
        ("ranks w, not |w|", magnitude_signed),
        ("prunes every |w| <= the threshold, so ties at it prune too many", magnitude_threshold_prunes_ties)],
    "obd_saliency": [("misses the ½ of the Taylor series", obd_without_half)],
    "pruned_layer_error": [
        ("ΔW = W ⊙ M: the kept weights, not the removed ones", layer_error_of_the_kept_weights),
        ("ΔZ = X ΔW, dense minus pruned: the sign is pruned minus dense, -X ΔW",
         layer_error_dense_minus_pruned),
        ("R = XᵀX without the 1/n: the error of a sum, not of a mean", layer_error_without_the_mean),
        ("the exact error without R's off-diagonal terms (the diagonal estimate twice)",
         layer_error_without_cross_terms),
        ("returns ΔZ in float64 for float32 inputs", layer_error_always_float64)],
    "pruned_unit_variance": [
        ("Σ_j σ_j² W_jk²: the covariance's off-diagonal terms (correlated inputs) are missing",
         unit_variance_without_covariance),
        ("XᵀX/n is not Cov(X): the inputs' mean is not subtracted", unit_variance_not_centred),
        ("divides by n - 1 (np.cov's default), not by n", unit_variance_over_n_minus_1),
        ("φ_k without the input variances σ_j²: the share of the weights' squares",
         unit_variance_phi_without_sigma)],
    "obs_prune_one": [("δw = -w_q H⁻¹e_q: forgets to divide by [H⁻¹]_qq", obs_without_division),
                      ("removes the smallest |w|, not the cheapest w_q²/[H⁻¹]_qq", obs_by_magnitude),
                      ("drops row and column q from the old H⁻¹ without its update", obs_inverse_not_updated),
                      ("takes the last of equal costs, not the first", obs_last_of_equal_costs),
                      ("may remove a weight that prunable excludes (the bias)", obs_ignores_prunable)],
    "reconstruct_layer": [("solves with every weight, then zeroes the pruned ones", reconstruct_then_mask),
                          ("fits the weights only (b = 0)", reconstruct_without_bias)],
    "distillation_kl_grad": [("T²(p⁽²⁾ - p⁽¹⁾)/n: the chain rule's 1/T forgotten", distill_t_squared),
                             ("softmax without subtracting each row's maximum", distill_without_max_shift)],
    "remove_neuron": [("drops a constant neuron without folding relu(b1[j]) W2[j] into b2",
                       remove_without_folding)],
    "layer_flops": [("counts a multiply per weight but not its add", flops_without_the_add),
                    ("alive = a nonzero weight in the column: a neuron with only its bias is counted dead",
                     flops_alive_by_weights_only),
                    ("adds every bias, also the dead neurons' (their column and bias are 0)",
                     flops_every_bias)],
}
