"""The exercises' graders can pass and can fail: reference solutions pass every grader, the blank stubs
fail every grader, and a deliberately wrong solution (a classic slip) fails each one."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from tinyprune import exercises  # noqa: E402
from tinyprune.exercises import solutions  # noqa: E402
from tinyprune.exercises.__main__ import main  # noqa: E402

NAMES = [exercise.name for exercise in exercises.EXERCISES]
EXAMPLES = 25          # small and derandomized: the whole file runs in seconds


# ---------------------------------------------------------------- wrong solutions, one slip each
def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward_with_relu(A_prev, W, b):                     # returns A = relu(Z), not Z
    return np.maximum(A_prev @ W + b, 0)


def backward_transposed(delta, A_prev, W, Z_prev):       # dW = δᵀA: the transposed product
    return delta.T @ A_prev, delta.sum(axis=0), (delta @ W.T) * (Z_prev > 0)


def backward_without_relu(delta, A_prev, W, Z_prev):     # δ_prev forgets relu'(Z_prev)
    return A_prev.T @ delta, delta.sum(axis=0), delta @ W.T


def cross_entropy_grad_sum(z, y):                        # forgets the 1/n of the mean
    grad = _softmax(z)
    grad[np.arange(len(y)), y] -= 1
    return grad


def squared_error_grad_without_half(z, Y):               # L without the ½: the gradient doubled
    p = _softmax(z)
    g = 2 * (p - Y) / len(z)
    return p * (g - np.sum(g * p, axis=1, keepdims=True))


def squared_error_grad_without_jacobian(z, Y):           # stops at ∂L/∂p
    return (_softmax(z) - Y) / len(z)


def sgd_state_unmasked(w, grad, velocity, mask, lr, momentum):   # mask forgotten in the optimizer state
    velocity = momentum * velocity + grad * mask
    return (w - lr * velocity) * mask, velocity


def adam_state_unmasked(w, grad, m, v, t, mask, lr, beta1, beta2, eps):   # moments keep living under the mask
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return (w - lr * m / (1 - beta1**t) / (np.sqrt(v / (1 - beta2**t)) + eps)) * mask, m, v


def adam_without_bias_correction(w, grad, m, v, t, mask, lr, beta1, beta2, eps):
    g = grad * mask
    m = beta1 * (m * mask) + (1 - beta1) * g
    v = beta2 * (v * mask) + (1 - beta2) * g**2
    return (w - lr * m / (np.sqrt(v) + eps)) * mask, m, v


def magnitude_layerwise(weights, sparsity):              # one threshold per array, not one for all
    return [solutions.global_magnitude_masks([w], sparsity)[0] for w in weights]


def magnitude_signed(weights, sparsity):                 # ranks w, not |w|
    return solutions.global_magnitude_masks([np.maximum(w, 0) for w in weights], sparsity)


def obd_without_half(W, H_diag):                         # misses the ½ of the Taylor series
    return H_diag * W**2


def obs_without_division(w, H_inv):                      # δw = -w_q H⁻¹ e_q: forgets / [H⁻¹]_qq
    q = int(np.argmin(w**2 / np.diag(H_inv)))
    new_w = w - w[q] * H_inv[:, q]
    new_w[q] = 0.0
    return new_w, q


def obs_by_magnitude(w, H_inv):                          # removes the smallest |w|, not the cheapest
    q = int(np.argmin(np.abs(w)))
    new_w = w - (w[q] / H_inv[q, q]) * H_inv[:, q]
    new_w[q] = 0.0
    return new_w, q


def reconstruct_then_mask(A, Z, mask):                   # solves with every weight, then zeroes the pruned
    W, b = solutions.reconstruct_layer(A, Z, np.ones_like(mask))
    return W * mask, b


def reconstruct_without_bias(A, Z, mask):                # fits the weights only (b = 0)
    W = np.zeros(mask.shape)
    for j in range(Z.shape[1]):
        rows = np.flatnonzero(mask[:, j])
        W[rows, j] = np.linalg.lstsq(A[:, rows], Z[:, j], rcond=None)[0]
    return W, np.zeros(Z.shape[1])


def distill_t_squared(z_student, z_teacher, T):          # T² (p_S - p_T)/n: the chain rule's 1/T forgotten
    return T * T * (_softmax(z_student / T) - _softmax(z_teacher / T)) / len(z_student)


def remove_without_folding(W1, b1, W2, b2, j):           # drops a constant neuron without moving its output
    return np.delete(W1, j, axis=1), np.delete(b1, j), np.delete(W2, j, axis=0), b2


WRONG = {
    "linear_forward": [forward_with_relu],
    "layer_backward": [backward_transposed, backward_without_relu],
    "softmax_cross_entropy_grad": [cross_entropy_grad_sum],
    "squared_error_softmax_grad": [squared_error_grad_without_half, squared_error_grad_without_jacobian],
    "masked_sgd_step": [sgd_state_unmasked],
    "masked_adam_step": [adam_state_unmasked, adam_without_bias_correction],
    "global_magnitude_masks": [magnitude_layerwise, magnitude_signed],
    "obd_saliency": [obd_without_half],
    "obs_prune_one": [obs_without_division, obs_by_magnitude],
    "reconstruct_layer": [reconstruct_then_mask, reconstruct_without_bias],
    "distillation_kl_grad": [distill_t_squared],
    "remove_neuron": [remove_without_folding],
}
WRONG_CASES = [(name, wrong) for name, wrongs in WRONG.items() for wrong in wrongs]


def test_every_exercise_has_a_wrong_solution() -> None:
    assert sorted(WRONG) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_passes(name: str) -> None:
    result = exercises.grade(name, getattr(solutions, name), EXAMPLES, shrink=False)
    assert result.passed, result.message


@pytest.mark.parametrize("name", NAMES)
def test_blank_stub_fails(name: str) -> None:
    functions = exercises.load_functions(exercises.STUDENT_FILE)
    result = exercises.grade(name, functions[name], EXAMPLES, shrink=False)
    assert not result.passed and "not written yet" in result.message


@pytest.mark.parametrize(("name", "wrong"), WRONG_CASES, ids=[w.__name__ for _, w in WRONG_CASES])
def test_wrong_solution_fails_with_a_helpful_message(name: str, wrong) -> None:
    result = exercises.grade(name, wrong, EXAMPLES, shrink=False)
    assert not result.passed, f"{wrong.__name__} passed the grader of {name}"
    assert "inputs" in result.message or "shape" in result.message, result.message


def test_message_names_the_worst_entry_and_the_inputs() -> None:
    message = exercises.grade("obd_saliency", obd_without_half, EXAMPLES).message
    assert "worst entry" in message and "expected" in message and "inputs W" in message, message


def test_cli_lists_every_exercise_with_its_notebook(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
    assert "notebook" in out


def test_cli_check_exit_status(tmp_path, capsys: pytest.CaptureFixture) -> None:
    answers = tmp_path / "answers"
    assert main(["init", str(answers)]) == 0
    assert main(["init", str(answers)]) == 1                       # never replaces the student's work
    assert main(["check", str(answers), "--only", "obd_saliency", "--max-examples", "5"]) == 1
    (answers / "student.py").write_text("def obd_saliency(W, H_diag):\n    return 0.5 * H_diag * W**2\n")
    assert main(["check", str(answers), "--only", "obd_saliency", "--max-examples", "5"]) == 0
    assert "1 of 1 exercises pass" in capsys.readouterr().out


def test_check_reports_a_missing_function(tmp_path) -> None:
    (tmp_path / "partial.py").write_text("def obd_saliency(W, H_diag):\n    return 0.5 * H_diag * W**2\n")
    results = {r.name: r for r in exercises.check(tmp_path, max_examples=3)}
    assert results["obd_saliency"].passed
    missing = results["remove_neuron"]
    assert not missing.passed and "no function remove_neuron" in missing.message


def test_bad_path_and_bad_name_say_what_is_expected(tmp_path) -> None:
    with pytest.raises(ValueError, match="neither a .py file nor a folder"):
        exercises.load_functions(tmp_path)
    with pytest.raises(ValueError, match="unknown exercise"):
        exercises.find("backprop")
