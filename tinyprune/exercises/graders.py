"""The graders: hypothesis property tests comparing a student's function with tinyprune's and with
finite differences (or, where there is no derivative, with the law the function must obey).

Each ``grade_<name>(function, config)`` (``config`` from ``grading_settings``) returns nothing when every
drawn example passes and raises ``WrongAnswerError`` with a message naming the input's shapes, the
quantity that differs and its worst entry. Inputs come from ``tinyprune.testing`` (bounded finite
floats, MLPs kept away from ReLU's kink). Runs are derandomized: the same function meets the same
examples every time. Needs ``hypothesis``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tinyprune import testing
from tinyprune.core import backprop, losses
from tinyprune.core.nn import MLP, Parameter
from tinyprune.fast.optim import SGD, Adam
from tinyprune.gradcheck import numeric_gradient
from tinyprune.prune.compact import compact
from tinyprune.prune.criteria import hessian_diagonal, obd
from tinyprune.prune.obs import _obs_unit
from tinyprune.prune.select import global_
from tinyprune.recover.distill import distillation_loss
from tinyprune.recover.reconstruct import reconstruct_layer as tinyprune_reconstruct_layer


class WrongAnswerError(AssertionError):
    """A student's function gave a wrong answer (or the wrong kind of answer) on some input."""


# ------------------------------------------------------------------ comparisons
def _describe(**inputs: Any) -> str:
    parts = []
    for name, value in inputs.items():
        if isinstance(value, np.ndarray) and value.size <= 8:        # small enough to show in full
            parts.append(f"{name} = {np.array2string(value, precision=4, separator=', ')}".replace("\n", ""))
        elif isinstance(value, np.ndarray):
            parts.append(f"{name}: shape {value.shape}")
        elif isinstance(value, list):
            parts.append(f"{name}: shapes {[np.shape(v) for v in value]}")
        else:
            parts.append(f"{name}={value!r}")
    return "inputs " + ", ".join(parts)


def close(what: str, got: Any, expected: Any, inputs: str, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Raise ``WrongAnswerError`` unless ``got`` has ``expected``'s shape and is allclose to it."""
    if got is None:
        raise WrongAnswerError(f"{what}: got None (forgot to return it?); {inputs}")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise WrongAnswerError(f"{what}: expected an array, got {type(got).__name__} ({error}); "
                               f"{inputs}") from None
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise WrongAnswerError(f"{what}: shape {got.shape}, expected {expected.shape}; {inputs}")
    if not np.all(np.isfinite(got)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        raise WrongAnswerError(f"{what}: entry {where} is {got[where]} (not finite); {inputs}")
    error = np.abs(got - expected) - (atol + rtol * np.abs(expected))
    if np.any(error > 0):
        where = tuple(int(i) for i in np.unravel_index(np.argmax(error), error.shape))
        raise WrongAnswerError(f"{what}: worst entry {where} is {got[where]:.6g}, expected "
                               f"{expected[where]:.6g} (off by {abs(got[where] - expected[where]):.3g}; "
                               f"{int(np.sum(error > 0))} of {error.size} entries wrong); {inputs}")


def exactly_zero(what: str, values: Any, mask: np.ndarray, inputs: str) -> None:
    """Raise unless ``values`` is exactly 0 wherever ``mask`` is False."""
    values = np.asarray(values)
    leaks = np.argwhere((values != 0) & ~mask)
    if leaks.size:
        where = tuple(int(i) for i in leaks[0])
        raise WrongAnswerError(f"{what}: entry {where} is {values[where]:.6g} but its mask is False (must be "
                           f"exactly 0; {len(leaks)} such entries); {inputs}")


def _pair(result: Any, count: int, what: str) -> tuple:
    if not isinstance(result, tuple) or len(result) != count:
        raise WrongAnswerError(f"{what} must return a tuple of {count} values, got {type(result).__name__}"
                           + (f" of length {len(result)}" if isinstance(result, tuple) else ""))
    return result


def grading_settings(max_examples: int = 30, shrink: bool = True) -> settings:
    """Derandomized, no deadline, no example database (grading writes nothing to the student's folder).

    ``shrink=True`` makes hypothesis search for the smallest failing input before reporting it (the
    clearest message for a student, a second or two per failure); CI turns it off.
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None, phases=phases,
                    report_multiple_bugs=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def _sizes(draw: st.DrawFn, high: int = 6) -> int:
    return draw(st.integers(1, high))


# ------------------------------------------------------------------ the graders
def grade_linear_forward(function: Callable, config: settings) -> None:
    @config
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        n, d, h = (_sizes(data.draw) for _ in range(3))
        A, W, b = (data.draw(testing.arrays(shape)) for shape in ((n, d), (d, h), (h,)))
        model = MLP([d, h], seed=0, dtype=np.float64)
        model.layers[0].W.data[...], model.layers[0].b.data[...] = W, b
        close("Z", function(A.copy(), W.copy(), b.copy()), backprop.forward(model, A).Z[0],
              _describe(A_prev=A, W=W, b=b))
    prop()


def grade_layer_backward(function: Callable, config: settings) -> None:
    @config
    @given(testing.mlp_cases(max_batch=5))
    def prop(case: testing.MLPCase) -> None:
        model, X, y = case.model, case.X, case.y
        cache = backprop.forward(model, X)
        _, expected = backprop.gradients(model, X, y)
        delta = losses.cross_entropy_grad(cache.logits, y)
        for index in reversed(range(len(model.layers))):
            W = model.layers[index].W.data
            Z_prev = cache.Z[index - 1] if index else np.ones_like(X)      # layer 1 has no ReLU below
            inputs = _describe(delta=delta, A_prev=cache.inputs[index], W=W, Z_prev=Z_prev)
            dW, db, delta_prev = _pair(function(delta.copy(), cache.inputs[index].copy(), W.copy(),
                                                Z_prev.copy()), 3, "layer_backward")
            close(f"dW of layer {index + 1} (tinyprune.backprop)", dW, expected[f"layers.{index}.W"], inputs)
            close(f"db of layer {index + 1} (tinyprune.backprop)", db, expected[f"layers.{index}.b"], inputs)
            delta = np.asarray(delta_prev, dtype=np.float64)
        # the last δ_prev (Z_prev = 1) is ∂L/∂X: check it against central differences of the loss
        numeric = numeric_gradient(lambda x: losses.cross_entropy(model(x), y), X.copy())
        close("δ_prev of layer 1 = ∂L/∂X (finite differences)", delta, numeric, _describe(X=X),
              rtol=1e-4, atol=1e-6)
    prop()


def grade_softmax_cross_entropy_grad(function: Callable, config: settings) -> None:
    @config
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        n, k = _sizes(data.draw), data.draw(st.integers(2, 6))
        z, y = data.draw(testing.arrays((n, k), bound=20.0)), data.draw(testing.labels(n, k))
        got = function(z.copy(), y.copy())
        inputs = _describe(z=z, y=y)
        close("∂L/∂z (tinyprune.losses.cross_entropy_grad)", got, losses.cross_entropy_grad(z, y), inputs)
        numeric = numeric_gradient(lambda v: losses.cross_entropy(v, y), z.copy())
        close("∂L/∂z (finite differences)", got, numeric, inputs, rtol=1e-4, atol=1e-7)
    prop()


def grade_squared_error_softmax_grad(function: Callable, config: settings) -> None:
    @config
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        n, k = _sizes(data.draw), data.draw(st.integers(2, 6))
        z, y = data.draw(testing.arrays((n, k), bound=5.0)), data.draw(testing.labels(n, k))
        Y = losses.one_hot(y, k)
        got = function(z.copy(), Y.copy())
        inputs = _describe(z=z, Y=Y)
        close("∂L/∂z (tinyprune.losses.loss_and_grad('squared_error'))", got,
              losses.loss_and_grad("squared_error", z, y)[1], inputs)
        numeric = numeric_gradient(lambda v: losses.squared_error(losses.softmax(v), Y, "mean"), z.copy())
        close("∂L/∂z (finite differences)", got, numeric, inputs, rtol=1e-4, atol=1e-8)
    prop()


@st.composite
def _masked_state(draw: st.DrawFn, slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """A weight pruned by ``mask`` (0 there), a gradient, and optimizer state left from before pruning."""
    shape = draw(testing.shapes(min_dims=1, max_dims=2, max_side=5))
    mask = draw(st.lists(st.booleans(), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    mask = np.array(mask, dtype=bool).reshape(shape)
    w = draw(testing.arrays(shape)) * mask
    grad = draw(testing.arrays(shape))
    state = [draw(testing.arrays(shape)) for _ in range(slots)]
    return w, grad, mask, state


def _tinyprune_step(optimizer_class: type, w: np.ndarray, grad: np.ndarray, mask: np.ndarray,
                    state: dict[str, np.ndarray], steps: int, **options: Any) -> tuple[Parameter, Any]:
    parameter = Parameter(w.copy(), mask=mask.copy())
    optimizer = optimizer_class([parameter], **options)
    optimizer.load_state_dict({"steps": np.array(steps), "lr": np.array(options["lr"]), **state})
    parameter.grad = grad.copy()
    optimizer.step()
    return parameter, optimizer


def grade_masked_sgd_step(function: Callable, config: settings) -> None:
    @config
    @given(_masked_state(slots=1), st.sampled_from([0.01, 0.1, 0.5]), st.sampled_from([0.0, 0.5, 0.9]))
    def prop(case: tuple, lr: float, momentum: float) -> None:
        w, grad, mask, (velocity,) = case
        inputs = _describe(w=w, mask=mask, lr=lr, momentum=momentum)
        answer = function(w.copy(), grad.copy(), velocity.copy(), mask.copy(), lr, momentum)
        new_w, new_velocity = _pair(answer, 2, "masked_sgd_step")
        exactly_zero("w", new_w, mask, inputs)
        exactly_zero("velocity (the optimizer's state)", new_velocity, mask, inputs)
        parameter, optimizer = _tinyprune_step(SGD, w, grad, mask, {"velocity.0": velocity}, 0,
                                               lr=lr, momentum=momentum)
        if momentum:                                # (tinyprune keeps no velocity without momentum)
            close("velocity (tinyprune.optim.SGD)", new_velocity, optimizer.state["velocity"][0], inputs)
        close("w (tinyprune.optim.SGD)", new_w, parameter.data, inputs)
    prop()


def grade_masked_adam_step(function: Callable, config: settings) -> None:
    @config
    @given(_masked_state(slots=2), st.integers(1, 50), st.sampled_from([1e-3, 1e-2, 0.1]),
           st.sampled_from([(0.9, 0.999), (0.5, 0.9)]))
    def prop(case: tuple, t: int, lr: float, betas: tuple[float, float]) -> None:
        w, grad, mask, (m, v) = case
        v = np.abs(v)                                          # a second moment is >= 0
        beta1, beta2, eps = *betas, 1e-7
        inputs = _describe(w=w, mask=mask, t=t, lr=lr, beta1=beta1, beta2=beta2)
        result = _pair(function(w.copy(), grad.copy(), m.copy(), v.copy(), t, mask.copy(), lr, beta1, beta2,
                                eps), 3, "masked_adam_step")
        for name, value in zip(("w", "m (the optimizer's state)", "v (the optimizer's state)"), result):
            exactly_zero(name, value, mask, inputs)
        parameter, optimizer = _tinyprune_step(Adam, w, grad, mask, {"m.0": m, "v.0": v}, t - 1,
                                               lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        close("m (tinyprune.optim.Adam)", result[1], optimizer.state["m"][0], inputs)
        close("v (tinyprune.optim.Adam)", result[2], optimizer.state["v"][0], inputs)
        close("w (tinyprune.optim.Adam)", result[0], parameter.data, inputs, rtol=1e-5, atol=1e-7)
    prop()


def grade_global_magnitude_masks(function: Callable, config: settings) -> None:
    @config
    @given(st.lists(testing.shapes(min_dims=1, max_dims=2, max_side=5), min_size=1, max_size=3), st.data(),
           st.floats(0.0, 1.0))
    def prop(shapes: list, data: st.DataObject, sparsity: float) -> None:
        weights = [data.draw(testing.arrays(shape)) for shape in shapes]
        inputs = _describe(weights=weights, sparsity=sparsity)
        masks = function([w.copy() for w in weights], sparsity)
        if not isinstance(masks, (list, tuple)) or len(masks) != len(weights):
            raise WrongAnswerError(f"expected a list of {len(weights)} masks, got {type(masks).__name__}; "
                                   f"{inputs}")
        for index, (mask, w) in enumerate(zip(masks, weights)):
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != w.shape:
                raise WrongAnswerError(f"mask {index}: dtype {mask.dtype}, shape {mask.shape}; expected "
                                       f"bool of shape {w.shape}; {inputs}")
        total = sum(w.size for w in weights)
        k = round(sparsity * total)
        pruned = total - sum(int(np.count_nonzero(m)) for m in masks)
        if pruned != k:
            raise WrongAnswerError(f"pruned {pruned} weights, expected exactly "
                                   f"round({sparsity:.4g} · {total}) = {k} in all the arrays together; "
                                   f"{inputs}")
        magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
        keep = np.concatenate([np.asarray(m).ravel() for m in masks])
        if 0 < k < total and magnitudes[~keep].max() > magnitudes[keep].min():
            raise WrongAnswerError(f"a pruned weight has |w| = {magnitudes[~keep].max():.6g} but a kept one "
                               f"has |w| = {magnitudes[keep].min():.6g} (prune the smallest); {inputs}")
        expected = np.concatenate([m.ravel() for m in global_([np.abs(w) for w in weights], sparsity)])
        ties = magnitudes == (magnitudes[~keep].max() if k else -1.0)
        close("masks (tinyprune.prune.select.global_, away from ties)", keep[~ties], expected[~ties], inputs)
    prop()


def grade_obd_saliency(function: Callable, config: settings) -> None:
    @config
    @given(testing.mlp_cases(max_batch=6))
    def prop(case: testing.MLPCase) -> None:
        diagonal = hessian_diagonal(case.model, case.X, case.y)
        expected = obd(case.model, case.X, case.y)
        for name, parameter in case.model.named_parameters():
            w, h = parameter.data.copy(), diagonal[name]
            inputs = _describe(W=w, H_diag=h)
            got = function(w.copy(), h.copy())
            close(f"saliency of {name} (tinyprune.prune.criteria.obd)", got, expected[name], inputs)
            # the loss rise it estimates, measured: E(w') = ½ Σ H_qq (w'_q - w_q)², set w_q to 0 alone
            rise = np.array([0.5 * np.sum(h * (np.where(np.arange(w.size) == q, 0.0, w.ravel())
                                                 - w.ravel()).reshape(w.shape) ** 2) for q in range(w.size)])
            close(f"saliency of {name} (the measured rise of ½ Σ H_qq (w'_q - w_q)²)", got,
                  rise.reshape(w.shape), inputs)
    prop()


@st.composite
def _quadratic(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A weight vector w and the inverse of a well-conditioned SPD H = BᵀB/m + 0.1 I."""
    p = draw(st.integers(2, 6))
    generator = np.random.default_rng(draw(testing.seeds))
    B = generator.normal(size=(p + 3, p))
    H = B.T @ B / (p + 3) + 0.1 * np.eye(p)
    return draw(testing.nonzero_arrays((p,), bound=5.0, margin=1e-2)), np.linalg.inv(H)


def grade_obs_prune_one(function: Callable, config: settings) -> None:
    @config
    @given(_quadratic())
    def prop(case: tuple[np.ndarray, np.ndarray]) -> None:
        w, H_inv = case
        inputs = _describe(w=w, H_inv=H_inv)
        new_w, q = _pair(function(w.copy(), H_inv.copy()), 2, "obs_prune_one")
        costs = w**2 / (2 * np.diag(H_inv))
        if not isinstance(q, (int, np.integer)) or not 0 <= q < w.size:
            raise WrongAnswerError(f"q must be an int index into w (0..{w.size - 1}), got {q!r}; {inputs}")
        if costs[q] > costs.min() * (1 + 1e-9):
            raise WrongAnswerError(f"removed w[{q}] (cost {costs[q]:.6g}) but "
                                   f"w[{int(np.argmin(costs))}] costs less ({costs.min():.6g}); {inputs}")
        new_w = np.asarray(new_w, dtype=np.float64)
        if new_w.shape != w.shape or new_w[q] != 0:
            raise WrongAnswerError(f"the removed weight w[{q}] must be stored as an exact 0, got "
                               f"{new_w[q] if new_w.shape == w.shape else new_w.shape}; {inputs}")
        if np.sum(costs == costs[q]) == 1:                    # a unique choice: tinyprune chooses it too
            close("new w (tinyprune.prune.obs._obs_unit)", new_w,
                  _obs_unit(w, H_inv, np.ones(w.size, bool), 1, 1), inputs)
        H = np.linalg.inv(H_inv)

        def energy(v: np.ndarray) -> float:
            return 0.5 * float((v - w) @ H @ (v - w))
        close("E(new w) = w_q² / (2 [H⁻¹]_qq)", energy(new_w), costs[q], inputs)
        slope = numeric_gradient(energy, new_w.copy())          # optimal: flat along every kept weight
        close("∂E/∂w' at the new w, kept weights (finite differences; must be 0)", np.delete(slope, q),
              np.zeros(w.size - 1), inputs, atol=1e-5)
    prop()


@st.composite
def _layer(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d, h = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    generator = np.random.default_rng(draw(testing.seeds))
    A = generator.normal(size=(d + 6, d))                     # more rows than unknowns: one solution
    Z = A @ generator.normal(size=(d, h)) + generator.normal(size=h) + 0.3 * generator.normal(size=(d + 6, h))
    mask = draw(st.lists(st.booleans(), min_size=d * h, max_size=d * h))
    return A, Z, np.array(mask, dtype=bool).reshape(d, h)


def grade_reconstruct_layer(function: Callable, config: settings) -> None:
    @config
    @given(_layer())
    def prop(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        A, Z, mask = case
        inputs = _describe(A=A, Z=Z, mask=mask)
        W, b = _pair(function(A.copy(), Z.copy(), mask.copy()), 2, "reconstruct_layer")
        exactly_zero("W", W, mask, inputs)
        expected_W, expected_b = tinyprune_reconstruct_layer(A, Z, mask, damping=0.0)
        for name, got, expected in (("W", W, expected_W), ("b", b, expected_b)):
            close(f"{name} (tinyprune.recover.reconstruct_layer, damping 0)", got, expected, inputs,
                  atol=1e-7)
        W = np.asarray(W, dtype=np.float64)

        def error(V: np.ndarray) -> float:
            return float(np.sum((A @ V + np.asarray(b) - Z) ** 2) / len(A))
        slope = numeric_gradient(error, W.copy()) * mask          # a minimum: flat along every kept weight
        close("∂error/∂W on the kept weights (finite differences; must be 0)", slope, np.zeros_like(W),
              inputs, atol=1e-5)
    prop()


def grade_distillation_kl_grad(function: Callable, config: settings) -> None:
    @config
    @given(st.data(), st.sampled_from([1.0, 2.0, 4.0]))
    def prop(data: st.DataObject, T: float) -> None:
        n, k = _sizes(data.draw), data.draw(st.integers(2, 6))
        z_s, z_t = (data.draw(testing.arrays((n, k), bound=8.0)) for _ in range(2))
        inputs = _describe(z_student=z_s, z_teacher=z_t, T=T)
        got = function(z_s.copy(), z_t.copy(), T)
        close("∂L/∂z_S (tinyprune.recover.distillation_loss, output='kl')", got,
              distillation_loss(z_s, z_t, output="kl", temperature=T)[1], inputs)
        def loss(v: np.ndarray) -> float:
            return distillation_loss(v, z_t, output="kl", temperature=T)[0]
        numeric = numeric_gradient(loss, z_s.copy())
        close("∂L/∂z_S (finite differences)", got, numeric, inputs, rtol=1e-4, atol=1e-7)
    prop()


def grade_remove_neuron(function: Callable, config: settings) -> None:
    @config
    @given(st.integers(1, 4), st.integers(2, 5), st.integers(1, 3), testing.seeds, st.data(),
           st.sampled_from(["no inputs", "no outputs"]))
    def prop(d: int, h: int, k: int, seed: int, data: st.DataObject, death: str) -> None:
        j = data.draw(st.integers(0, h - 1))
        generator = np.random.default_rng(seed)
        model = MLP([d, h, k], seed=generator, dtype=np.float64)
        for layer in model.layers:
            layer.b.data[...] = generator.uniform(-1, 1, size=layer.b.shape)
        if death == "no inputs":
            model.layers[0].W.data[:, j] = 0
        else:
            model.layers[1].W.data[j] = 0
        W1, b1, W2, b2 = (p.data.copy() for p in model.parameters())
        inputs = _describe(W1=W1, b1=b1, W2=W2, b2=b2, j=j, neuron=death)
        result = _pair(function(W1.copy(), b1.copy(), W2.copy(), b2.copy(), j), 4, "remove_neuron")
        small = compact(model)
        for name, got, expected in zip(("W1", "b1", "W2", "b2"), result, small.parameters()):
            close(f"{name} (tinyprune.prune.compact)", got, expected.data, inputs)
        X = generator.normal(size=(7, d))
        outputs = np.maximum(X @ result[0] + result[1], 0) @ result[2] + result[3]
        close("the outputs of the smaller network (must not change)", outputs, model(X), inputs)
    prop()
