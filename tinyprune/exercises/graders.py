"""The graders: hypothesis property tests comparing a student's function with tinyprune's and with
finite differences (or, where there is no derivative, with the law the function must obey).

Each ``grade_<name>(function, config)`` (``config`` from ``grading_settings``) returns nothing when every
drawn example passes and raises ``WrongAnswerError`` with a message naming the input's shapes, the
quantity that differs and its worst entry. Inputs come from ``tinyprune.testing`` (bounded finite
floats, MLPs kept away from ReLU's kink). Runs are derandomized: the same function meets the same
examples every time. Needs ``hypothesis``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyprune import testing
from tinyprune.core import backprop, losses
from tinyprune.core.autograd import _unbroadcast
from tinyprune.core.nn import MLP, Parameter
from tinyprune.fast.optim import SGD, Adam
from tinyprune.gradcheck import numeric_gradient
from tinyprune.metrics import layer_stats
from tinyprune.prune.compact import compact
from tinyprune.prune.criteria import hessian_diagonal, obd
from tinyprune.prune.masks import apply_mask
from tinyprune.prune.obs import obs_prune_one as tinyprune_obs_prune_one
from tinyprune.prune.select import global_
from tinyprune.recover.distill import distillation_loss
from tinyprune.recover.reconstruct import reconstruct_layer as tinyprune_reconstruct_layer


class WrongAnswerError(AssertionError):
    """A student's function gave a wrong answer (or the wrong kind of answer) on some input."""


# ------------------------------------------------------------------ comparisons
def _show(name: str, value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size <= 12:        # small enough to show in full
        text = np.array2string(value, precision=4, separator=", ", threshold=20).replace("\n", "")
        plain = value.dtype in (np.float64, np.bool_)
        return f"{name} = {text}" + ("" if plain else f" ({value.dtype})")
    if isinstance(value, np.ndarray):
        return f"{name}: shape {value.shape}, {value.dtype}"
    if isinstance(value, list):
        return f"{name} = [" + "; ".join(_show(f"{name}[{i}]", v) for i, v in enumerate(value)) + "]"
    return f"{name}={value!r}"


def _describe(**inputs: Any) -> str:
    """Every input, in full when small: the message must let the student rerun the failing case."""
    return "inputs " + ", ".join(_show(name, value) for name, value in inputs.items())


# The last call of the student's function (its inputs and answer), so that a failure can be compared
# with the known slips (``name_the_slip``) on exactly the input that failed.
LAST_CALL: dict[str, Any] = {}


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def call(function: Callable, **inputs: Any) -> Any:
    """``function(*inputs)`` on copies, refusing an answer that changed an input in place.

    The docstrings promise new arrays: a step that writes into the caller's ``w`` would corrupt an
    optimizer's other copies, so the change is a wrong answer, named with the entry that moved.
    """
    given = {name: _copy(value) for name, value in inputs.items()}
    LAST_CALL.clear()
    LAST_CALL.update(inputs=inputs, answer=None)
    answer = function(*given.values())
    LAST_CALL["answer"] = answer
    for name, value in inputs.items():
        for index, (before, after) in enumerate(zip(*(v if isinstance(v, list) else [v]
                                                       for v in (value, given[name])))):
            if isinstance(before, np.ndarray) and not np.array_equal(before, after, equal_nan=True):
                where = tuple(int(i) for i in np.argwhere(~((before == after) | (before != before)))[0])
                label = f"{name}[{index}]" if isinstance(value, list) else name
                raise WrongAnswerError(
                    f"changed its input {label} in place (entry {where} was {before[where]!r}, became "
                    f"{after[where]!r}); return new arrays and leave the caller's untouched; "
                    f"{_describe(**inputs)}")
    return answer


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and bool(
            np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))
    except (TypeError, ValueError):
        return False


def name_the_slip(exercise: str) -> str:
    """The known slips (``slips.SLIPS``) that give the student's very answer on the last input, or ''."""
    from tinyprune.exercises.slips import SLIPS

    if "inputs" not in LAST_CALL or LAST_CALL.get("answer") is None:
        return ""
    matches = []
    for description, slip in SLIPS.get(exercise, []):
        try:
            with np.errstate(all="ignore"):
                if _same(slip(*_copy(list(LAST_CALL["inputs"].values()))), LAST_CALL["answer"]):
                    matches.append(description)
        except Exception:                           # a slip that cannot run on this input is not it
            continue
    return "; or: ".join(matches)


def expect_dtype(what: str, got: Any, dtype: Any, inputs: str) -> None:
    """Raise unless the answer has the inputs' floating dtype (float32 in, float32 out)."""
    got_dtype = getattr(got, "dtype", None)
    if got_dtype is not None and got_dtype != np.dtype(dtype):
        raise WrongAnswerError(f"{what}: dtype {got_dtype} for {np.dtype(dtype)} inputs; return the inputs' "
                               f"dtype (compute in it, or in float64 and convert back); {inputs}")


def _as(value: Any, dtype: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(dtype)
    return value


def _floats(answer: Any) -> list[np.ndarray]:
    answers = answer if isinstance(answer, (tuple, list)) else [answer]
    return [a for a in answers if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


def dtype_probe(function: Callable, **inputs: Any) -> None:
    """The answer keeps the inputs' dtype: float32 in, float32 out; float64 in, float64 out."""
    for dtype in (np.float32, np.float64):
        given = {name: _as(value, dtype) for name, value in inputs.items()}
        answer = call(function, **given)
        if not _floats(answer):
            raise WrongAnswerError(f"expected float arrays, got {type(answer).__name__}; "
                                   f"{_describe(**given)}")
        for value in _floats(answer):
            expect_dtype("the answer", value, dtype, _describe(**given))


def close(what: str, got: Any, expected: Any, inputs: str, rtol: float = 1e-9, atol: float = 1e-11) -> None:
    """Raise ``WrongAnswerError`` unless ``got`` has ``expected``'s shape and is allclose to it.

    float64 answers must agree to about nine digits: a sum in another order, ``einsum`` or a loop
    differs in the fifteenth, float32 arithmetic already in the eighth (the message then says so).
    """
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
        float32_like = np.allclose(got, expected, rtol=1e-5, atol=1e-7)
        hint = (" (it agrees only to about 7 digits, what float32 arithmetic gives: if you computed in "
                "float32, keep the inputs' float64)" if float32_like else "")
        raise WrongAnswerError(f"{what}: worst entry {where} is {got[where]:.10g}, expected "
                               f"{expected[where]:.10g} (off by {abs(got[where] - expected[where]):.3g}; "
                               f"{int(np.sum(error > 0))} of {error.size} entries wrong){hint}; {inputs}")


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
        close("Z", call(function, A_prev=A, W=W, b=b), backprop.forward(model, A).Z[0],
              _describe(A_prev=A, W=W, b=b))
    prop()
    rng = np.random.default_rng(0)
    dtype_probe(function, A_prev=rng.normal(size=(3, 2)), W=rng.normal(size=(2, 4)), b=rng.normal(size=4))


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
            dW, db, delta_prev = _pair(call(function, delta=delta, A_prev=cache.inputs[index], W=W,
                                            Z_prev=Z_prev), 3, "layer_backward")
            close(f"dW of layer {index + 1} (tinyprune.core.backprop)", dW, expected[f"layers.{index}.W"],
                  inputs)
            close(f"db of layer {index + 1} (tinyprune.core.backprop)", db, expected[f"layers.{index}.b"],
                  inputs)
            delta = np.asarray(delta_prev, dtype=np.float64)
        # the last δ_prev (Z_prev = 1) is ∂L/∂X: check it against central differences of the loss
        numeric = numeric_gradient(lambda x: losses.cross_entropy(model(x), y), X.copy())
        close("δ_prev of layer 1 = ∂L/∂X (finite differences)", delta, numeric, _describe(X=X),
              rtol=1e-4, atol=1e-6)
    prop()
    rng = np.random.default_rng(0)
    dtype_probe(function, delta=rng.normal(size=(3, 4)), A_prev=rng.normal(size=(3, 2)),
                W=rng.normal(size=(2, 4)), Z_prev=rng.normal(size=(3, 2)))


def grade_softmax_cross_entropy_grad(function: Callable, config: settings) -> None:
    @config
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        n, k = _sizes(data.draw), data.draw(st.integers(2, 6))
        z, y = data.draw(testing.arrays((n, k), bound=20.0)), data.draw(testing.labels(n, k))
        got = call(function, z=z, y=y)
        inputs = _describe(z=z, y=y)
        close("∂L/∂z (tinyprune.core.losses.cross_entropy_grad)", got, losses.cross_entropy_grad(z, y),
              inputs)
        numeric = numeric_gradient(lambda v: losses.cross_entropy(v, y), z.copy())
        close("∂L/∂z (finite differences)", got, numeric, inputs, rtol=1e-4, atol=1e-7)
    prop()
    large = {"z": np.array([[800.0, 0.0, -3.0], [0.0, -800.0, 1.0]]), "y": np.array([0, 2])}
    close("∂L/∂z on large logits (the docstring asks for a stable softmax: subtract each row's maximum)",
          call(function, **large), losses.cross_entropy_grad(large["z"], large["y"]), _describe(**large))
    dtype_probe(function, z=np.random.default_rng(0).normal(size=(3, 4)), y=np.array([0, 3, 1]))


def grade_squared_error_softmax_grad(function: Callable, config: settings) -> None:
    # first a typical case (three classes, no symmetry), where the known slips all give different answers
    typical = {"z": np.array([[1.0, -0.5, 2.0], [0.3, 0.1, -1.2]]), "Y": np.eye(3)[[1, 0]]}
    close("∂L/∂z (tinyprune.core.losses.loss_and_grad('squared_error'))", call(function, **typical),
          losses.loss_and_grad("squared_error", typical["z"], np.array([1, 0]))[1], _describe(**typical))

    @config
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        n, k = _sizes(data.draw), data.draw(st.integers(2, 6))
        z, y = data.draw(testing.arrays((n, k), bound=5.0)), data.draw(testing.labels(n, k))
        Y = losses.one_hot(y, k)
        got = call(function, z=z, Y=Y)
        inputs = _describe(z=z, Y=Y)
        close("∂L/∂z (tinyprune.core.losses.loss_and_grad('squared_error'))", got,
              losses.loss_and_grad("squared_error", z, y)[1], inputs)
        numeric = numeric_gradient(lambda v: losses.squared_error(losses.softmax(v), Y, "mean"), z.copy())
        close("∂L/∂z (finite differences)", got, numeric, inputs, rtol=1e-4, atol=1e-8)
    prop()
    large = {"z": np.array([[800.0, 0.0, -3.0], [0.0, -800.0, 1.0]]), "Y": np.eye(3)[[0, 2]]}
    close("∂L/∂z on large logits (the softmax must subtract each row's maximum)", call(function, **large),
          losses.loss_and_grad("squared_error", large["z"], np.array([0, 2]))[1], _describe(**large))
    dtype_probe(function, z=np.random.default_rng(0).normal(size=(3, 4)), Y=np.eye(4)[[0, 3, 1]])


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


@st.composite
def _broadcast(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...]]:
    """An upstream gradient and an operand shape that broadcasts to it (leading axes dropped, sizes to 1)."""
    grad = draw(testing.arrays(testing.shapes(min_dims=1, max_dims=3, max_side=4)))
    kept = grad.shape[draw(st.integers(0, grad.ndim)):]
    return grad, tuple(1 if draw(st.booleans()) else size for size in kept)


def _check_unbroadcast(function: Callable, grad: np.ndarray, shape: tuple[int, ...]) -> None:
    inputs = _describe(grad=grad, shape=shape)
    got = call(function, grad=grad, shape=shape)
    close("∂L/∂(operand) (tinyprune.core.autograd._unbroadcast)", got, _unbroadcast(grad, shape), inputs)
    # the law behind it: summing is the adjoint of broadcasting, ⟨g, broadcast(x)⟩ = ⟨unbroadcast(g), x⟩
    x = np.random.default_rng(0).normal(size=shape)
    close("⟨unbroadcast(g), x⟩ = ⟨g, broadcast_to(x)⟩ for a random x", np.sum(np.asarray(got) * x),
          np.sum(grad * np.broadcast_to(x, grad.shape)), inputs)


def grade_unbroadcast(function: Callable, config: settings) -> None:
    # first the cases of notebook 03: a row vector, a column, a scalar, and nothing broadcast
    g = np.arange(12.0).reshape(3, 4) / 7
    for shape in ((4,), (3, 1), (), (3, 4)):
        _check_unbroadcast(function, g, shape)

    @config
    @given(_broadcast())
    def prop(case: tuple[np.ndarray, tuple[int, ...]]) -> None:
        _check_unbroadcast(function, *case)
    prop()
    dtype_probe(function, grad=g, shape=(3, 1))


def grade_masked_sgd_step(function: Callable, config: settings) -> None:
    @config
    @given(_masked_state(slots=1), st.sampled_from([0.01, 0.1, 0.5]), st.sampled_from([0.0, 0.5, 0.9]))
    def prop(case: tuple, lr: float, momentum: float) -> None:
        w, grad, mask, (velocity,) = case
        inputs = _describe(w=w, grad=grad, velocity=velocity, mask=mask, lr=lr, momentum=momentum)
        answer = call(function, w=w, grad=grad, velocity=velocity, mask=mask, lr=lr, momentum=momentum)
        new_w, new_velocity = _pair(answer, 2, "masked_sgd_step")
        exactly_zero("w", new_w, mask, inputs)
        exactly_zero("velocity (the optimizer's state)", new_velocity, mask, inputs)
        parameter, optimizer = _tinyprune_step(SGD, w, grad, mask, {"velocity.0": velocity}, 0,
                                               lr=lr, momentum=momentum)
        if momentum:                                # (tinyprune keeps no velocity without momentum)
            close("velocity (tinyprune.core.optim.SGD)", new_velocity, optimizer.state["velocity"][0], inputs)
        close("w (tinyprune.core.optim.SGD)", new_w, parameter.data, inputs)
    prop()
    rng = np.random.default_rng(0)
    mask = np.array([[True, False], [True, True]])
    dtype_probe(function, w=rng.normal(size=(2, 2)) * mask, grad=rng.normal(size=(2, 2)),
                velocity=rng.normal(size=(2, 2)), mask=mask, lr=0.1, momentum=0.9)


@st.composite
def _adam_state(draw: st.DrawFn) -> tuple:
    """A pruned weight, a gradient, and moments Adam really reaches: from zeros, over the recent
    gradients (before the mask existed, so the moments live under it), older gradients 0."""
    w, grad, mask, _ = draw(_masked_state(slots=0))
    t = draw(st.integers(1, 50))
    beta1, beta2 = draw(st.sampled_from([(0.9, 0.999), (0.5, 0.9)]))
    m, v = np.zeros_like(w), np.zeros_like(w)
    for _ in range(min(t - 1, 3)):
        past = draw(testing.arrays(w.shape))
        m, v = beta1 * m + (1 - beta1) * past, beta2 * v + (1 - beta2) * past**2
    return w, grad, mask, m, v, t, beta1, beta2


def grade_masked_adam_step(function: Callable, config: settings) -> None:
    @config
    @given(_adam_state(), st.sampled_from([1e-3, 1e-2, 0.1]))
    def prop(case: tuple, lr: float) -> None:
        w, grad, mask, m, v, t, beta1, beta2 = case
        eps = 1e-7
        given = {"w": w, "grad": grad, "m": m, "v": v, "t": t, "mask": mask, "lr": lr, "beta1": beta1,
                 "beta2": beta2, "eps": eps}
        inputs = _describe(**given)
        result = _pair(call(function, **given), 3, "masked_adam_step")
        for name, value in zip(("w", "m (the optimizer's state)", "v (the optimizer's state)"), result):
            exactly_zero(name, value, mask, inputs)
        parameter, optimizer = _tinyprune_step(Adam, w, grad, mask, {"m.0": m, "v.0": v}, t - 1,
                                               lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        close("m (tinyprune.core.optim.Adam)", result[1], optimizer.state["m"][0], inputs)
        close("v (tinyprune.core.optim.Adam)", result[2], optimizer.state["v"][0], inputs)
        close("w (tinyprune.core.optim.Adam)", result[0], parameter.data, inputs)
    prop()
    # a tiny gradient from zero moments: v̂ = g² is far below ε, where ε's place in the formula shows
    tiny = {"w": np.array([1.0, -2.0]), "grad": np.array([1e-5, -3e-6]), "m": np.zeros(2), "v": np.zeros(2),
            "t": 1, "mask": np.array([True, True]), "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7}
    parameter, _ = _tinyprune_step(Adam, tiny["w"], tiny["grad"], tiny["mask"], {"m.0": tiny["m"],
                                   "v.0": tiny["v"]}, 0, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-7)
    close("w after a tiny gradient (ε is added to √v̂, outside the root)",
          _pair(call(function, **tiny), 3, "masked_adam_step")[0], parameter.data, _describe(**tiny))
    rng = np.random.default_rng(0)
    mask = np.array([[True, False], [True, True]])
    dtype_probe(function, w=rng.normal(size=(2, 2)) * mask, grad=rng.normal(size=(2, 2)),
                m=rng.normal(size=(2, 2)) * 0.1, v=rng.uniform(size=(2, 2)) * 0.01, t=3, mask=mask, lr=1e-3,
                beta1=0.9, beta2=0.999, eps=1e-7)


def _leaky_weights(w, grad, velocity, mask, lr, momentum):
    velocity = momentum * velocity * mask + grad                # the gradient is not masked ...
    return w - lr * velocity, velocity * mask                   # ... so the pruned weights move


def _leaky_velocity(w, grad, velocity, mask, lr, momentum):
    velocity = momentum * velocity + grad * mask                 # the old velocity lives on under the mask
    return (w - lr * velocity) * mask, velocity


def _correct_step(w, grad, velocity, mask, lr, momentum):
    velocity = momentum * (velocity * mask) + grad * mask
    return (w - lr * velocity) * mask, velocity


def grade_masked_step_property(function: Callable, config: settings) -> None:
    """The student's property must pass a correct step and catch every step that breaks the law.

    Their ``@given`` runs under a profile without the shrink phase (unless they set ``phases``
    themselves): a caught wrong step needs no smallest example, and shrinking takes seconds.
    """
    settings.register_profile("tinyprune-grading", phases=[Phase.explicit, Phase.reuse, Phase.generate],
                              deadline=None, database=None)
    previous = settings._current_profile                    # noqa: SLF001 - put the student's back after
    settings.load_profile("tinyprune-grading")
    try:
        _grade_property(function)
    finally:
        settings.load_profile(previous or "default")


def _grade_property(function: Callable) -> None:
    try:
        function(_correct_step)
    except AssertionError as error:
        raise WrongAnswerError(f"your property fails for a correct masked SGD step ({error!s:.200}); it must "
                               f"pass when the pruned weights and velocity stay exactly 0") from None
    for wrong, what in ((_leaky_weights, "a step that does not mask the new weights"),
                        (_leaky_velocity, "a step whose velocity lives on under the mask")):
        try:
            function(wrong)
        except AssertionError:
            continue
        raise WrongAnswerError(f"your property passes {what}; it must raise AssertionError for it (draw "
                               f"nonzero velocities and masks with False entries, and check both outputs)")


def grade_global_magnitude_masks(function: Callable, config: settings) -> None:
    @config
    @given(st.lists(testing.shapes(min_dims=1, max_dims=2, max_side=5), min_size=1, max_size=3), st.data(),
           st.floats(0.0, 1.0), st.booleans())
    def prop(shapes: list, data: st.DataObject, sparsity: float, tied: bool) -> None:
        # with ``tied`` the weights are small integers, so many magnitudes are equal (ties at the threshold)
        draw = (lambda shape: data.draw(testing.arrays(shape, bound=2.0)).round()) if tied else \
            (lambda shape: data.draw(testing.arrays(shape)))
        weights = [draw(shape) for shape in shapes]
        inputs = _describe(weights=weights, sparsity=sparsity)
        masks = call(function, weights=weights, sparsity=sparsity)
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
            got = call(function, W=w, H_diag=h)
            close(f"saliency of {name} (tinyprune.prune.criteria.obd)", got, expected[name], inputs)
            # the loss rise it estimates, measured: E(w') = ½ Σ H_qq (w'_q - w_q)², set w_q to 0 alone
            rise = np.array([0.5 * np.sum(h * (np.where(np.arange(w.size) == q, 0.0, w.ravel())
                                                 - w.ravel()).reshape(w.shape) ** 2) for q in range(w.size)])
            close(f"saliency of {name} (the measured rise of ½ Σ H_qq (w'_q - w_q)²)", got,
                  rise.reshape(w.shape), inputs)
    prop()
    rng = np.random.default_rng(0)
    dtype_probe(function, W=rng.normal(size=(3, 2)), H_diag=rng.uniform(size=(3, 2)))


def _one_layer(W: np.ndarray, bias: float, mask: np.ndarray) -> tuple[MLP, MLP]:
    """A float64 one-layer MLP with weights ``W`` and every bias ``bias``, and a copy pruned by ``mask``."""
    dense = MLP([W.shape[0], W.shape[1]], seed=0, dtype=np.float64)
    dense.layers[0].W.data[...], dense.layers[0].b.data[...] = W, bias
    pruned = copy.deepcopy(dense)
    apply_mask(pruned.layers[0].W, mask)
    return dense, pruned


def _typical_then_drawn(check: Callable, function: Callable, typical: dict[str, Any], cases: Any,
                        config: settings) -> None:
    """``check`` the typical case first (where every known slip answers otherwise: the message names
    it), then every drawn case, then the dtype on the typical case."""
    check(function, **typical)

    @config
    @given(cases)
    def prop(case: tuple) -> None:
        check(function, *case)
    prop()
    dtype_probe(function, **typical)


@st.composite
def _pruned_layer(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs X with correlated columns (as neighbouring pixels are), weights W and a mask."""
    n, d, h = draw(st.integers(2, 7)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    generator = np.random.default_rng(draw(testing.seeds))
    X = generator.normal(size=(n, d)) @ (np.eye(d) + 0.8 * generator.normal(size=(d, d)))
    mask = np.array(draw(st.lists(st.booleans(), min_size=d * h, max_size=d * h)), dtype=bool)
    return X, draw(testing.arrays((d, h))), mask.reshape(d, h)


def _check_pruned_layer_error(function: Callable, X: np.ndarray, W: np.ndarray, mask: np.ndarray) -> None:
    inputs = _describe(X=X, W=W, mask=mask)
    delta_Z, exact, diagonal = _pair(call(function, X=X, W=W, mask=mask), 3, "pruned_layer_error")
    dense, pruned = _one_layer(W, 1.0, mask)                              # the bias cancels in ΔZ
    measured = backprop.forward(pruned, X).Z[0] - backprop.forward(dense, X).Z[0]
    close("ΔZ = Z(pruned) - Z(dense) (tinyprune.core.backprop.forward)", delta_Z, measured, inputs)
    for what, got in (("exact", exact), ("diagonal", diagonal)):
        if not isinstance(got, (float, int, np.floating, np.integer)) and np.ndim(got) != 0:
            raise WrongAnswerError(f"{what} must be one number, got {type(got).__name__}; {inputs}")
    close("exact = (1/n)‖ΔZ‖² (measured on tinyprune's ΔZ)", exact, np.sum(measured**2) / len(X), inputs)
    saliency = obd(dense, X, hessian="layerwise")["layers.0.W"]           # ½ (2 R_jj) w² = R_jj w²
    close("diagonal = Σ of the removed weights' OBD saliencies (tinyprune.prune.criteria.obd, layerwise)",
          diagonal, np.sum(saliency[~mask]), inputs)


def grade_pruned_layer_error(function: Callable, config: settings) -> None:
    # first a typical case: correlated columns, three rows, removed weights in both units, where the
    # exact error and its diagonal estimate differ and every known slip gives another answer
    typical = {"X": np.array([[1.0, 0.9, -0.5], [2.0, 2.1, 0.3], [-1.0, -0.8, 1.2]]),
               "W": np.array([[0.5, -1.0], [0.7, 0.2], [-0.3, 0.8]]),
               "mask": np.array([[False, True], [False, False], [True, True]])}
    _typical_then_drawn(_check_pruned_layer_error, function, typical, _pruned_layer(), config)


@st.composite
def _inputs_and_units(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated inputs with a nonzero mean, nonzero weights (every unit has a spread) and a mask."""
    n, d, h = draw(st.integers(3, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    generator = np.random.default_rng(draw(testing.seeds))
    mixing = np.eye(d) + 0.8 * generator.normal(size=(d, d))
    X = generator.normal(size=(n, d)) @ mixing + 2 * generator.normal(size=d)
    mask = np.array(draw(st.lists(st.booleans(), min_size=d * h, max_size=d * h)), dtype=bool)
    return X, draw(testing.nonzero_arrays((d, h), bound=3.0, margin=0.1)), mask.reshape(d, h)


def _check_pruned_unit_variance(function: Callable, X: np.ndarray, W: np.ndarray, mask: np.ndarray) -> None:
    inputs = _describe(X=X, W=W, mask=mask)
    before, after, phi = _pair(call(function, X=X, W=W, mask=mask), 3, "pruned_unit_variance")
    dense, pruned = _one_layer(W, 0.5, mask)                              # the bias shifts, never spreads
    for what, got, model in (("Var(z_k) before pruning", before, dense), ("Var(z_k) after", after, pruned)):
        close(f"{what} (the variance over the rows of tinyprune.core.backprop.forward's Z)", got,
              backprop.forward(model, X).Z[0].var(axis=0), inputs, atol=1e-9)
    sigma2 = X.var(axis=0)
    close("φ_k = Σ_kept σ_j² W_jk² / Σ_j σ_j² W_jk²", phi, (sigma2 @ (W * mask) ** 2) / (sigma2 @ W**2),
          inputs, atol=1e-9)


def grade_pruned_unit_variance(function: Callable, config: settings) -> None:
    # first a typical case: three correlated inputs with a mean, where every known slip answers otherwise
    typical = {"X": np.array([[1.0, 0.9, 2.5], [2.0, 2.1, 3.3], [-1.0, -0.8, 4.2], [0.5, 0.2, 2.0]]),
               "W": np.array([[0.5, -1.0], [0.7, 0.2], [-0.3, 0.8]]),
               "mask": np.array([[False, True], [True, False], [True, True]])}
    _typical_then_drawn(_check_pruned_unit_variance, function, typical, _inputs_and_units(), config)


@st.composite
def _quadratic(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A weight vector w, the inverse of a well-conditioned SPD H = BᵀB/m + 0.1 I (or of c·I, where equal
    weights tie), and which weights may go: all, all but the last (a unit's bias, as OBS calls it), or
    a drawn set of at least one."""
    p = draw(st.integers(2, 6))
    generator = np.random.default_rng(draw(testing.seeds))
    if draw(st.sampled_from([True, True, True, False])):    # one case in four has ties
        B = generator.normal(size=(p + 3, p))
        H = B.T @ B / (p + 3) + 0.1 * np.eye(p)
        w = draw(testing.nonzero_arrays((p,), bound=5.0, margin=1e-2))
    else:                                                       # ties: equal |w| on an equal diagonal
        H = draw(st.sampled_from([0.5, 1.0, 3.0])) * np.eye(p)
        w = draw(hnp.arrays(np.float64, (p,), elements=st.sampled_from([-2.0, -1.0, 1.0, 2.0])))
    kind = draw(st.sampled_from(["all", "bias", "drawn"]))
    prunable = np.arange(p) < (p if kind == "all" else p - 1)
    if kind == "drawn":
        prunable = np.array(draw(st.lists(st.booleans(), min_size=p, max_size=p)))
        prunable[draw(st.integers(0, p - 1))] = True
    return w, np.linalg.inv(H), prunable


def grade_obs_prune_one(function: Callable, config: settings) -> None:
    @config
    @given(_quadratic())
    def prop(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        w, H_inv, prunable = case
        inputs = _describe(w=w, H_inv=H_inv, prunable=prunable)
        answer = call(function, w=w, H_inv=H_inv, prunable=prunable)
        new_w, new_H_inv, q = _pair(answer, 3, "obs_prune_one")
        costs = np.where(prunable, w**2 / (2 * np.diag(H_inv)), np.inf)
        if not isinstance(q, (int, np.integer)) or not 0 <= q < w.size:
            raise WrongAnswerError(f"q must be an int index into w (0..{w.size - 1}), got {q!r}; {inputs}")
        if not prunable[q]:
            raise WrongAnswerError(f"removed w[{q}], but prunable[{q}] is False; {inputs}")
        if costs[q] > costs.min() * (1 + 1e-9):
            raise WrongAnswerError(f"removed w[{q}] (cost {costs[q]:.6g}) but "
                                   f"w[{int(np.argmin(costs))}] costs less ({costs.min():.6g}); {inputs}")
        if np.any(costs[:q] == costs[q]):
            first = int(np.argmax(costs[:q] == costs[q]))
            raise WrongAnswerError(f"removed w[{q}], but w[{first}] costs exactly as much and comes first "
                                   f"(take the first of equal costs); {inputs}")
        rest = np.delete(np.arange(w.size), q)
        expected_w, expected_H_inv, _ = tinyprune_obs_prune_one(w, H_inv, prunable)
        close("new w, entry q removed (tinyprune.prune.obs.obs_prune_one)", new_w, expected_w, inputs)
        H = np.linalg.inv(H_inv)
        close("new H⁻¹ (the inverse of H without row and column q)", new_H_inv,
              np.linalg.inv(H[np.ix_(rest, rest)]), inputs, rtol=1e-7, atol=1e-9)
        full = np.zeros(w.size)
        full[rest] = np.asarray(new_w, dtype=np.float64)

        def energy(v: np.ndarray) -> float:
            return 0.5 * float((v - w) @ H @ (v - w))
        close("E(new w) = w_q² / (2 [H⁻¹]_qq)", energy(full), costs[q], inputs)
        slope = numeric_gradient(energy, full.copy())           # optimal: flat along every kept weight
        close("∂E/∂w' at the new w, kept weights (finite differences; must be 0)", slope[rest],
              np.zeros(w.size - 1), inputs, atol=1e-5)
    prop()
    B = np.random.default_rng(0).normal(size=(6, 3))
    dtype_probe(function, w=np.array([1.0, -0.5, 2.0]), H_inv=np.linalg.inv(B.T @ B / 6 + 0.1 * np.eye(3)),
                prunable=np.array([True, True, False]))


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
        W, b = _pair(call(function, A=A, Z=Z, mask=mask), 2, "reconstruct_layer")
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
        got = call(function, z_student=z_s, z_teacher=z_t, T=T)
        close("∂L/∂z_S (tinyprune.recover.distillation_loss, output='kl')", got,
              distillation_loss(z_s, z_t, output="kl", temperature=T)[1], inputs)
        def loss(v: np.ndarray) -> float:
            return distillation_loss(v, z_t, output="kl", temperature=T)[0]
        numeric = numeric_gradient(loss, z_s.copy())
        close("∂L/∂z_S (finite differences)", got, numeric, inputs, rtol=1e-4, atol=1e-7)
    prop()
    large = {"z_student": np.array([[2000.0, 0.0], [0.0, -2000.0]]),
             "z_teacher": np.array([[0.0, 1500.0], [1.0, 0.0]]), "T": 2.0}
    close("∂L/∂z_S on large logits (the softmax must subtract each row's maximum)", call(function, **large),
          distillation_loss(large["z_student"], large["z_teacher"], output="kl", temperature=2.0)[1],
          _describe(**large))
    rng = np.random.default_rng(0)
    dtype_probe(function, z_student=rng.normal(size=(3, 4)), z_teacher=rng.normal(size=(3, 4)), T=2.0)


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
        result = _pair(call(function, W1=W1, b1=b1, W2=W2, b2=b2, j=j), 4, "remove_neuron")
        small = compact(model)
        for name, got, expected in zip(("W1", "b1", "W2", "b2"), result, small.parameters()):
            close(f"{name} (tinyprune.prune.compact)", got, expected.data, inputs)
        X = generator.normal(size=(7, d))
        outputs = np.maximum(X @ result[0] + result[1], 0) @ result[2] + result[3]
        close("the outputs of the smaller network (must not change)", outputs, model(X), inputs)
    prop()


def _check_layer_flops(function: Callable, W: np.ndarray, b: np.ndarray) -> None:
    inputs = _describe(W=W, b=b)
    answer = _pair(call(function, W=W, b=b), 2, "layer_flops")
    layer = MLP([W.shape[0], W.shape[1]], seed=0, dtype=W.dtype)
    layer.layers[0].W.data[...], layer.layers[0].b.data[...] = W, b
    stats = layer_stats(layer)[0]
    for what, got, expected in zip(("dense FLOPs", "effective FLOPs"), answer,
                                   (stats.flops_dense, stats.flops_effective)):
        if not isinstance(got, (int, np.integer, float, np.floating)) or float(got) != int(got):
            raise WrongAnswerError(f"{what} must be a whole number (a count), got {got!r}; {inputs}")
        if int(got) != expected:
            raise WrongAnswerError(f"{what}: {int(got)}, expected {expected} (tinyprune.metrics.layer_stats: "
                                   f"{stats.alive} of {stats.neurons} neurons alive, {stats.weight_nonzeros} "
                                   f"nonzero weights); {inputs}")


def grade_layer_flops(function: Callable, config: settings) -> None:
    # first a typical case: a dead neuron (column and bias 0) and a constant one (only its bias left)
    typical = {"W": np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.5, 0.0, 0.0]]),
               "b": np.array([0.1, 0.0, 0.7])}
    _check_layer_flops(function, **typical)

    @config
    @given(st.integers(1, 6), st.integers(1, 5), st.data(), st.sampled_from([np.float64, np.float32]))
    def prop(d_in: int, d_out: int, data: st.DataObject, dtype: type) -> None:
        W = data.draw(testing.arrays((d_in, d_out))) * data.draw(hnp.arrays(bool, (d_in, d_out)))
        b = data.draw(testing.arrays((d_out,))) * data.draw(hnp.arrays(bool, (d_out,)))
        _check_layer_flops(function, W.astype(dtype), b.astype(dtype))
    prop()
