"""The student's code runs the library: ``use(FOLDER)`` swaps tinyprune's functions for the student's.

MiniTorch's way: once a student has written an operator, every later module runs on it. Inside
``with use("my_answers") as usage:``, ``fit`` back-propagates with the student's ``layer_backward``,
takes ``dL/dz`` from their ``softmax_cross_entropy_grad`` / ``squared_error_softmax_grad``, SGD and Adam
move every parameter with their ``masked_sgd_step`` / ``masked_adam_step``, global magnitude pruning
chooses with their ``global_magnitude_masks``, distillation with ``output="kl"`` steps along their
``distillation_kl_grad``, ``recover.reconstruct(..., damping=0)`` refits each layer with their
``reconstruct_layer``, and OBS (``prune.obs.obs_reference``, and the per-unit finish of
``prune(..., "obs")``) removes weight after weight with their ``obs_prune_one``. (Compaction is not
hooked: no library function is one-to-one with ``remove_neuron``.) Each hook point is one module
attribute (``HOOKS``), swapped for an adapter and put back on exit, whatever happens inside. An
adapter hands a call it cannot express with the student's function (a hidden-layer loss, unmasked
gradients, a prior mask, float targets, OBS's blocks of several weights) to the library's own, and
``usage`` counts both, so nothing is claimed that did not run. ``end_to_end`` trains and prunes the
document's model on the student's code (by global magnitude, as the document does: not by OBS).

Needs the student's functions to be correct to give sensible numbers; ``check`` grades them first.
"""

from __future__ import annotations

import contextlib
import importlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Usage:
    """How often each hook ran the student's function (``student``) or the library's (``library``)."""

    student: Counter = field(default_factory=Counter)
    library: Counter = field(default_factory=Counter)


def _backward(student: Callable, original: Callable, usage: Usage) -> Callable:
    def backward(model: Any, cache: Any, dlogits: np.ndarray, dhidden: Any = None,
                 masked: bool = True) -> dict[str, np.ndarray]:
        if not masked or (dhidden is not None and any(d is not None for d in dhidden)):
            usage.library["layer_backward"] += 1
            return original(model, cache, dlogits, dhidden, masked)
        grads, delta = {}, dlogits
        for index in reversed(range(len(model.layers))):
            layer = model.layers[index]
            Z_prev = cache.Z[index - 1] if index else np.ones_like(cache.inputs[0])   # no ReLU below layer 1
            dW, db, delta = student(delta, cache.inputs[index], layer.W.data, Z_prev)
            usage.student["layer_backward"] += 1
            for name, grad, parameter in ((f"layers.{index}.W", dW, layer.W),
                                          (f"layers.{index}.b", db, layer.b)):
                grad = np.asarray(grad, dtype=parameter.data.dtype)
                grads[name] = grad * parameter.mask if parameter.mask is not None else grad   # the mask law
        return dict(reversed(grads.items()))
    return backward


def _loss_and_grad(functions: dict[str, Callable], original: Callable, usage: Usage) -> Callable:
    def loss_and_grad(name: str, logits: np.ndarray, y: Any) -> tuple[float, np.ndarray]:
        value, grad = original(name, logits, y)
        labels = np.asarray(y)
        exercise = {"cross_entropy": "softmax_cross_entropy_grad",
                    "squared_error": "squared_error_softmax_grad"}.get(name)
        if exercise not in functions or labels.ndim != 1 or labels.dtype.kind not in "iu":
            usage.library["loss gradient"] += 1
            return value, grad
        usage.student[exercise] += 1
        if exercise == "softmax_cross_entropy_grad":
            return value, np.asarray(functions[exercise](logits, labels), dtype=grad.dtype)
        targets = np.eye(logits.shape[1], dtype=logits.dtype)[labels]
        return value, np.asarray(functions[exercise](logits, targets), dtype=grad.dtype)
    return loss_and_grad


def _global(student: Callable, original: Callable, usage: Usage) -> Callable:
    def global_(scores: Any, sparsity: float, alive: Any = None) -> list[np.ndarray]:
        if alive is not None and not all(a is None or np.all(a) for a in alive):
            usage.library["global_magnitude_masks"] += 1      # a prior mask: the library's own rule
            return original(scores, sparsity, alive)
        usage.student["global_magnitude_masks"] += 1
        return [np.asarray(mask, dtype=bool) for mask in student([np.asarray(s) for s in scores], sparsity)]
    return global_


def _distillation(student: Callable, original: Callable, usage: Usage) -> Callable:
    def distillation_loss(student_logits: np.ndarray, teacher_logits: np.ndarray, labels: Any = None, *,
                          output: str = "logits", temperature: float = 1.0,
                          alpha: float = 0.0) -> tuple[float, np.ndarray]:
        value, grad = original(student_logits, teacher_logits, labels, output=output, temperature=temperature,
                               alpha=alpha)
        if output != "kl" or alpha != 0:                    # only the pure KL gradient is the exercise
            usage.library["distillation_kl_grad"] += 1
            return value, grad
        usage.student["distillation_kl_grad"] += 1
        return value, np.asarray(student(student_logits, teacher_logits, temperature), dtype=grad.dtype)
    return distillation_loss


def _reconstruct(student: Callable, original: Callable, usage: Usage) -> Callable:
    def reconstruct_layer(A: np.ndarray, Z: np.ndarray, weight_mask: np.ndarray, bias_mask: Any = None, *,
                          damping: float = 1e-4, bias: Any = None, fit_bias: bool = True) -> tuple:
        # the exercise fits every bias freely with no damping (the given ``bias`` then plays no part)
        plain = damping == 0 and fit_bias and (bias_mask is None or np.all(bias_mask))
        if not plain:                                       # ridge damping, a fixed bias: the library's
            usage.library["reconstruct_layer"] += 1
            return original(A, Z, weight_mask, bias_mask, damping=damping, bias=bias, fit_bias=fit_bias)
        usage.student["reconstruct_layer"] += 1
        W, b = student(np.asarray(A, dtype=np.float64), np.asarray(Z, dtype=np.float64), weight_mask)
        return np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return reconstruct_layer


def _obs_step(student: Callable, usage: Usage) -> Callable:
    def obs_prune_one(w: np.ndarray, H_inv: np.ndarray,
                      prunable: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        usage.student["obs_prune_one"] += 1
        answer = student(w.copy(), H_inv.copy(), prunable.copy())   # H_inv may be shared by other units
        p = w.size
        if not (isinstance(answer, tuple) and len(answer) == 3 and isinstance(answer[2], (int, np.integer))
                and 0 <= answer[2] < p and prunable[answer[2]]):
            raise ValueError(f"obs_prune_one must return (w, H_inv, q) with q the index of a prunable weight "
                             f"(0..{p - 1}, prunable[q] True), got {answer!r:.200}; grade it with check")
        new_w, new_H_inv = np.asarray(answer[0], np.float64), np.asarray(answer[1], np.float64)
        if new_w.shape != (p - 1,) or new_H_inv.shape != (p - 1, p - 1):
            raise ValueError(f"obs_prune_one must return w and H_inv without entry q, shapes {(p - 1,)} "
                             f"and {(p - 1, p - 1)}, got {new_w.shape} and {new_H_inv.shape}; grade it with "
                             f"check")
        return new_w, new_H_inv, int(answer[2])
    return obs_prune_one


def _obs_block(original: Callable, usage: Usage) -> Callable:
    def obs_prune_block(w: np.ndarray, H_inv: np.ndarray, prunable: np.ndarray, m: int) -> tuple:
        usage.library["obs_prune_one"] += 1                 # m > 1 weights at once: not the exercise's step
        return original(w, H_inv, prunable, m)
    return obs_prune_block


def _obs_units_one_by_one(w: np.ndarray, H_inv: np.ndarray, prunable: np.ndarray, remove: int,
                          block_size: int | None) -> np.ndarray:
    """The verb's batched greedy finish, unit by unit through ``_obs_unit`` (which calls the hooked step)."""
    from tinyprune.prune import obs

    return np.stack([obs._obs_unit(w[i], H_inv[i], prunable[i], remove, block_size) for i in range(len(w))])


def _sgd(student: Callable, original: Callable, usage: Usage) -> Callable:
    def sgd_update(w: np.ndarray, grad: np.ndarray, velocity: np.ndarray, mask: np.ndarray, lr: float,
                   momentum: float, nesterov: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if nesterov:                                        # the exercise has no look-ahead
            usage.library["masked_sgd_step"] += 1
            return original(w, grad, velocity, mask, lr, momentum, nesterov)
        usage.student["masked_sgd_step"] += 1
        new_w, new_velocity = student(w.copy(), grad.copy(), velocity.copy(), mask.copy(), lr, momentum)
        if not momentum:                                    # tinyprune keeps no velocity without momentum
            new_velocity = velocity * mask
        return np.asarray(new_w, dtype=w.dtype), np.asarray(new_velocity, dtype=w.dtype)
    return sgd_update


def _adam(student: Callable, usage: Usage) -> Callable:
    def adam_update(w: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, mask: np.ndarray,
                    lr: float, beta1: float, beta2: float, eps: float) -> tuple[np.ndarray, ...]:
        usage.student["masked_adam_step"] += 1
        new = student(w.copy(), grad.copy(), m.copy(), v.copy(), t, mask.copy(), lr, beta1, beta2, eps)
        return tuple(np.asarray(array, dtype=w.dtype) for array in new)
    return adam_update


# exercise(s) -> (module, attribute, adapter factory): the hook points, one module attribute each
HOOKS: tuple[tuple[tuple[str, ...], str, str, Callable], ...] = (
    (("layer_backward",), "tinyprune.core.backprop", "backward",
     lambda f, original, usage: _backward(f["layer_backward"], original, usage)),
    (("softmax_cross_entropy_grad", "squared_error_softmax_grad"), "tinyprune.core.losses", "loss_and_grad",
     _loss_and_grad),
    (("masked_sgd_step",), "tinyprune.core.optim", "sgd_update",
     lambda f, original, usage: _sgd(f["masked_sgd_step"], original, usage)),
    (("masked_adam_step",), "tinyprune.core.optim", "adam_update",
     lambda f, original, usage: _adam(f["masked_adam_step"], usage)),
    (("global_magnitude_masks",), "tinyprune.prune.select", "global_",
     lambda f, original, usage: _global(f["global_magnitude_masks"], original, usage)),
    (("distillation_kl_grad",), "tinyprune.recover.distill", "distillation_loss",
     lambda f, original, usage: _distillation(f["distillation_kl_grad"], original, usage)),
    (("reconstruct_layer",), "tinyprune.recover.reconstruct", "reconstruct_layer",
     lambda f, original, usage: _reconstruct(f["reconstruct_layer"], original, usage)),
    (("obs_prune_one",), "tinyprune.prune.obs", "obs_prune_one",
     lambda f, original, usage: _obs_step(f["obs_prune_one"], usage)),
    (("obs_prune_one",), "tinyprune.prune.obs", "_obs_prune_block",
     lambda f, original, usage: _obs_block(original, usage)),
    (("obs_prune_one",), "tinyprune.prune.obs", "_obs_units",
     lambda f, original, usage: _obs_units_one_by_one),
)


@contextlib.contextmanager
def use(folder: str | Path | dict[str, Callable]) -> Iterator[Usage]:
    """Run tinyprune on the student's functions (a folder of answers, or a dict name -> function).

    Only the hooks whose functions the folder defines are swapped; everything is restored on exit. Inside,
    ``fit`` takes the plain textbook path (``tp.plain()``), the one that calls the swapped functions.
    This imports and runs the student's code in this process (``check`` grades it in another first).
    """
    from tinyprune.exercises.loading import load_functions
    from tinyprune.fast.switch import plain

    functions = folder if isinstance(folder, dict) else load_functions(folder)
    usage, swapped = Usage(), []
    try:
        stack = contextlib.ExitStack()
        stack.enter_context(plain())     # the textbook's code path: the one that calls the hooked functions
        for exercises, module_name, attribute, adapter in HOOKS:
            if any(name in functions for name in exercises):
                module = importlib.import_module(module_name)
                original = getattr(module, attribute)
                swapped.append((module, attribute, original))
                setattr(module, attribute, adapter(functions, original, usage))
        yield usage
    finally:
        for module, attribute, original in reversed(swapped):
            setattr(module, attribute, original)
        stack.close()


def end_to_end(folder: str | Path | dict[str, Callable], epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """Train the document's 784-64-64-10 network on mnist-5k, prune 90 % of its weights by global
    magnitude and fine-tune one epoch, once on the student's code and once on tinyprune's; the test
    accuracies of both, and how often the student's functions ran.
    """
    from tinyprune.core.nn import MLP
    from tinyprune.data import load
    from tinyprune.prune import magnitude
    from tinyprune.training import evaluate, fit

    data = load("mnist-5k")

    def run() -> list[float]:
        model = MLP([784, 64, 64, 10], seed=seed)
        fit(model, data.train, epochs=epochs, batch_size=128, seed=seed, progress=False)
        accuracies = [evaluate(model, data.test)["accuracy"]]
        magnitude(model, 0.9, scope="global")
        accuracies.append(evaluate(model, data.test)["accuracy"])
        fit(model, data.train, epochs=1, batch_size=128, seed=seed, progress=False)
        return accuracies + [evaluate(model, data.test)["accuracy"]]

    with use(folder) as usage:
        yours = run()
    return {"yours": yours, "tinyprune": run(), "student_calls": dict(usage.student),
            "library_calls": dict(usage.library)}


def end_to_end_verdict(folder: str | Path, tolerance: float = 0.01) -> tuple[bool, str]:
    """``check``'s last stage: the document's model trained and pruned on the student's code reaches
    tinyprune's accuracies (within ``tolerance``) at every stage, and their functions really ran."""
    result = end_to_end(folder)
    stages = ("dense", "pruned 90 %", "fine-tuned 1 epoch")
    table = ", ".join(f"{stage} {yours:.3f} (tinyprune {ours:.3f})"
                      for stage, yours, ours in zip(stages, result["yours"], result["tinyprune"]))
    calls = ", ".join(f"{name} x{count}" for name, count in sorted(result["student_calls"].items()))
    if not result["student_calls"]:
        return False, "none of your functions ran: write layer_backward, softmax_cross_entropy_grad, " \
                      "masked_adam_step or global_magnitude_masks first"
    passed = all(abs(a - b) <= tolerance for a, b in zip(result["yours"], result["tinyprune"]))
    return passed, f"test accuracy on your code: {table}; your functions ran: {calls}"
