"""The exercises' graders can pass and can fail: reference solutions pass every grader, the blank stubs
fail every grader, and a deliberately wrong solution (a classic slip) fails each one."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from tinyprune import exercises  # noqa: E402
from tinyprune.exercises import solutions  # noqa: E402
from tinyprune.exercises.__main__ import main  # noqa: E402
from tinyprune.exercises.slips import SLIPS  # noqa: E402

NAMES = [exercise.name for exercise in exercises.EXERCISES]
EXAMPLES = 25          # small and derandomized: the whole file runs in seconds


# ------------------------------------------------------------ wrong solutions (tinyprune/exercises/slips.py)
WRONG_CASES = [(name, description, wrong) for name, known in SLIPS.items() for description, wrong in known]
WRONG = {name: [wrong for _, wrong in known] for name, known in SLIPS.items()}


# ---------------------------------------------------------------- correct solutions written differently
def forward_with_einsum(A_prev, W, b):
    return np.einsum("nd,dh->nh", A_prev, W) + b


def cross_entropy_with_loops(z, y):
    grad = np.empty_like(z)
    for i in range(len(z)):                                   # one row at a time, max shift by hand
        e = np.exp(z[i] - max(z[i]))
        grad[i] = e / e.sum()
        grad[i, y[i]] -= 1.0
    return grad / len(z)


def cross_entropy_float64_inside(z, y):
    return solutions.softmax_cross_entropy_grad(z.astype(np.float64), y).astype(z.dtype)


def sgd_with_where(w, grad, velocity, mask, lr, momentum):
    velocity = np.where(mask, momentum * velocity + grad, 0.0).astype(w.dtype)
    return np.where(mask, w - lr * velocity, 0.0).astype(w.dtype), velocity


def magnitude_by_sorting_once(weights, sparsity):
    flat = np.concatenate([np.abs(w).ravel() for w in weights])
    order = np.argsort(flat, kind="mergesort")
    keep = np.ones(flat.size, bool)
    keep[order[: round(sparsity * flat.size)]] = False
    parts = np.split(keep, np.cumsum([w.size for w in weights])[:-1])
    return [part.reshape(w.shape) for part, w in zip(parts, weights)]


def obs_inverse_by_inverting_twice(w, H_inv, prunable):
    q = int(np.argmin(np.where(prunable, w**2 / (2 * np.diag(H_inv)), np.inf)))
    rest = [i for i in range(w.size) if i != q]
    H = np.linalg.inv(H_inv)
    return (w - w[q] / H_inv[q, q] * H_inv[:, q])[rest], np.linalg.inv(H[np.ix_(rest, rest)]), q


def distill_float64_inside(z_student, z_teacher, T):
    answer = solutions.distillation_kl_grad(z_student.astype(np.float64), z_teacher.astype(np.float64), T)
    return answer.astype(z_student.dtype)


DIFFERENT_BUT_RIGHT = [
    ("linear_forward", forward_with_einsum), ("softmax_cross_entropy_grad", cross_entropy_with_loops),
    ("softmax_cross_entropy_grad", cross_entropy_float64_inside), ("masked_sgd_step", sgd_with_where),
    ("global_magnitude_masks", magnitude_by_sorting_once), ("distillation_kl_grad", distill_float64_inside),
    ("obs_prune_one", obs_inverse_by_inverting_twice)]


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


@pytest.mark.parametrize(("name", "description", "wrong"), WRONG_CASES,
                         ids=[w.__name__ for _, _, w in WRONG_CASES])
def test_wrong_solution_fails_and_the_message_names_the_slip(name: str, description: str, wrong) -> None:
    with np.errstate(all="ignore"):
        result = exercises.grade(name, wrong, EXAMPLES, shrink=False)
    assert not result.passed, f"{wrong.__name__} passed the grader of {name}"
    if name == "masked_step_property":             # a property has no answer to compare: say what it missed
        assert "your property" in result.message, result.message
        return
    assert "inputs" in result.message or "shape" in result.message, result.message
    assert description in result.message, result.message


@pytest.mark.parametrize(("name", "right"), DIFFERENT_BUT_RIGHT,
                         ids=[right.__name__ for _, right in DIFFERENT_BUT_RIGHT])
def test_correct_solutions_written_differently_pass(name: str, right) -> None:
    result = exercises.grade(name, right, EXAMPLES, shrink=False)
    assert result.passed, result.message


def layer_error_measured(X, W, mask):
    delta_Z = np.einsum("nd,dh->nh", X, np.where(mask, W, 0)) - X @ W     # pruned minus dense, as defined
    return delta_Z, float(np.sum(delta_Z.astype(np.float64) ** 2) / len(X)), float(sum(
        np.mean(X[:, j].astype(np.float64) ** 2) * float(W[j, k]) ** 2 for j, k in np.argwhere(~mask)))


def test_a_layer_error_measured_rather_than_by_the_trace_passes() -> None:
    result = exercises.grade("pruned_layer_error", layer_error_measured, EXAMPLES, shrink=False)
    assert result.passed, result.message


def test_message_names_the_worst_entry_and_the_inputs() -> None:
    message = exercises.grade("obd_saliency", WRONG["obd_saliency"][0], EXAMPLES).message
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


# ---------------------------------------------------------------- the checker runs the code in a cage
OBD = "def obd_saliency(W, H_diag):\n    return 0.5 * H_diag * W**2\n"


def _check_cli(folder, capsys, *extra: str) -> tuple[int, str, str]:
    status = main(["check", str(folder), "--only", "obd_saliency", "--max-examples", "3", *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_sys_exit_at_import_is_a_clean_error_not_a_pass(tmp_path, capsys) -> None:
    (tmp_path / "student.py").write_text("import sys\n" + OBD + "sys.exit(0)\n")
    status, out, err = _check_cli(tmp_path, capsys)
    assert status == 1 and "sys.exit(0)" in err and "pass" not in out


def test_sys_exit_inside_a_function_fails_that_exercise(tmp_path, capsys) -> None:
    (tmp_path / "student.py").write_text("import sys\ndef obd_saliency(W, H_diag):\n    sys.exit(0)\n")
    status, out, _ = _check_cli(tmp_path, capsys)
    assert status == 1 and "FAIL  obd_saliency" in out and "sys.exit" in out and "0 of 1" in out


def test_an_endless_loop_fails_after_the_time_limit(tmp_path, capsys) -> None:
    (tmp_path / "student.py").write_text("def obd_saliency(W, H_diag):\n    while True:\n        pass\n")
    status, out, _ = _check_cli(tmp_path, capsys, "--time-limit", "8")
    assert status == 1 and "time limit of 8 s" in out


def test_a_stray_thread_does_not_keep_check_alive(tmp_path, capsys) -> None:
    (tmp_path / "student.py").write_text(
        "import threading, time\n" + OBD + "threading.Thread(target=time.sleep, args=(3600,)).start()\n")
    status, out, _ = _check_cli(tmp_path, capsys, "--time-limit", "60")
    assert status == 0 and "1 of 1 exercises pass" in out


def test_imported_reference_solutions_do_not_pass(tmp_path, capsys) -> None:
    (tmp_path / "student.py").write_text("from tinyprune.exercises.solutions import *\n")
    status, out, _ = _check_cli(tmp_path, capsys)
    assert status == 1 and "imported from" in out and "write your own" in out


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, capsys, monkeypatch) -> None:
    from tinyprune.exercises import __main__ as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "check", interrupted)
    (tmp_path / "student.py").write_text(OBD)
    status, _, err = _check_cli(tmp_path, capsys)
    assert status == 130 and err.strip() == "interrupted: no verdict"


def test_ctrl_c_during_check_kills_the_grading_process(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "student.py").write_text("def obd_saliency(W, H_diag):\n    while True:\n        pass\n")
    process = subprocess.Popen([sys.executable, "-m", "tinyprune.exercises", "check", str(tmp_path), "--only",
                                "obd_saliency"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6)                                          # the grading process is in the student's loop
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and b"Traceback" not in err and b"interrupted" in err
    leftover = subprocess.run(["pgrep", "-f", f"_worker grade {tmp_path}"], capture_output=True)
    assert leftover.stdout == b"", "the grading process outlived check"
    assert os.path.isdir(tmp_path)


def test_init_into_an_existing_file_or_a_read_only_folder_is_one_line(tmp_path, capsys) -> None:
    import os

    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    assert main(["init", str(taken)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):                     # running as root: permissions do not bind
            pytest.skip("the folder stays writable for this user")
        assert main(["init", str(locked)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("cannot write") and err.count("\n") == 1 and "Traceback" not in err
    finally:
        locked.chmod(0o700)


def test_the_blank_stubs_fail_with_messages_through_the_cli(tmp_path, capsys) -> None:
    assert main(["init", str(tmp_path / "answers")]) == 0
    status, out, _ = _check_cli(tmp_path / "answers", capsys)
    assert status == 1 and "not written yet" in out


# ---------------------------------------------------------------- the student's code runs the library
def test_use_runs_the_students_functions_and_puts_the_library_back(tmp_path) -> None:
    from tinyprune.core import backprop, losses
    from tinyprune.core.nn import MLP
    from tinyprune.data import Dataset
    from tinyprune.exercises.hooks import use
    from tinyprune.prune import select
    from tinyprune.training import fit

    originals = (backprop.backward, losses.loss_and_grad, select.global_)
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, size=40))
    answers = {name: getattr(solutions, name) for name in
               ("layer_backward", "softmax_cross_entropy_grad", "global_magnitude_masks")}
    with pytest.raises(RuntimeError), use(answers) as usage:
        fit(MLP([5, 4, 3], seed=0), data, epochs=1, batch_size=8, progress=False)
        raise RuntimeError("an error inside the block")
    assert usage.student["layer_backward"] == 5 * 2 and usage.student["softmax_cross_entropy_grad"] == 5
    assert (backprop.backward, losses.loss_and_grad, select.global_) == originals


def test_end_to_end_matches_tinyprune_with_the_solutions_and_fails_with_a_slip() -> None:
    from tinyprune.exercises.hooks import end_to_end_verdict

    passed, message = end_to_end_verdict({"layer_backward": solutions.layer_backward,
                                          "softmax_cross_entropy_grad": solutions.softmax_cross_entropy_grad})
    assert passed and "layer_backward x" in message, message
    passed, message = end_to_end_verdict({"layer_backward": WRONG["layer_backward"][1]})   # relu' forgotten
    assert not passed, message


def test_compare_shows_exact_close_and_the_largest_difference() -> None:
    table = exercises.compare({"a": np.ones(3), "b": np.zeros(2)},
                              {"a": np.ones(3), "b": np.ones(2), "c": 1})
    lines = [" ".join(line.split()) for line in table.splitlines()]
    assert "a yes yes 0" in lines and "b no no 1" in lines
    assert "c (missing from yours)" in lines


def test_use_hooks_distillation_and_reconstruction_only_where_they_are_the_exercise() -> None:
    import copy

    from tinyprune import recover
    from tinyprune.core.nn import MLP
    from tinyprune.data import Dataset
    from tinyprune.exercises.hooks import use
    from tinyprune.prune import magnitude
    from tinyprune.training import fit

    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(60, 6)).astype(np.float32), rng.integers(0, 3, size=60))
    dense = MLP([6, 5, 3], seed=0)
    fit(dense, data, epochs=2, batch_size=16, progress=False)
    pruned = copy.deepcopy(dense)
    magnitude(pruned, 0.5, scope="global")
    answers = {name: getattr(solutions, name) for name in ("distillation_kl_grad", "reconstruct_layer")}
    theirs, ours = copy.deepcopy(pruned), copy.deepcopy(pruned)
    recover.reconstruct(ours, dense, data.X, damping=0.0)
    with use(answers) as usage:
        recover.reconstruct(theirs, dense, data.X, damping=0.0)       # the exercise: no damping
        recover.reconstruct(copy.deepcopy(pruned), dense, data.X)      # damped: the library's own
        recover.distill(copy.deepcopy(pruned), dense, data, epochs=1, output="kl", temperature=2.0,
                        progress=False)
    assert usage.student["reconstruct_layer"] == 2 and usage.library["reconstruct_layer"] == 2
    assert usage.student["distillation_kl_grad"] > 0
    for a, b in zip(theirs.parameters(), ours.parameters()):
        assert np.allclose(a.data, b.data, atol=1e-6)


def _train_prune_train(optimizer_name: str, options: dict, answers: dict | None) -> tuple:
    """Train one epoch, prune half the weights (the optimizer's state is from before the mask), train one
    more; on the student's steps (``use(answers)``) or on tinyprune's (``plain()``, the same code path)."""
    import contextlib

    from tinyprune.core.nn import MLP
    from tinyprune.data import Dataset
    from tinyprune.exercises.hooks import use
    from tinyprune.fast.optim import make_optimizer
    from tinyprune.fast.switch import plain
    from tinyprune.prune import magnitude
    from tinyprune.training import fit

    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(60, 6)).astype(np.float32), rng.integers(0, 3, size=60))
    model = MLP([6, 5, 3], seed=0)
    optimizer = make_optimizer(optimizer_name, model.parameters(), **options)
    with (use(answers) if answers else contextlib.nullcontext()) as usage, plain():
        for _ in range(2):
            fit(model, data, epochs=1, batch_size=16, seed=0, optimizer=optimizer, progress=False)
            if model.layers[0].W.mask is None:
                magnitude(model, 0.5, scope="global")
    return [p.data.copy() for p in model.parameters()], optimizer.state_dict(), usage


@pytest.mark.parametrize("optimizer_name, options, exercise, slip", [
    ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}, "masked_sgd_step", 0),   # velocity unmasked
    ("sgd", {"lr": 0.1}, "masked_sgd_step", 0),
    ("adam", {"lr": 0.01, "weight_decay": 1e-3}, "masked_adam_step", 1)])                # no bias correction
def test_use_steps_the_optimizers_with_the_students_update(optimizer_name, options, exercise, slip) -> None:
    from tinyprune.core import optim

    originals = (optim.sgd_update, optim.adam_update)
    ours, our_state, _ = _train_prune_train(optimizer_name, options, None)
    theirs, their_state, usage = _train_prune_train(optimizer_name, options,
                                                    {exercise: getattr(solutions, exercise)})
    assert usage.student[exercise] == 2 * 4 * 4 and not usage.library        # 2 epochs x 4 steps x 4 arrays
    assert all(np.array_equal(a, b) for a, b in zip(theirs, ours))            # the same code, bit for bit
    assert all(np.array_equal(their_state[key], our_state[key]) for key in our_state)
    assert (optim.sgd_update, optim.adam_update) == originals
    if options.get("momentum") or optimizer_name == "adam":                   # the slip shows in w or state
        wrong, wrong_state, _ = _train_prune_train(optimizer_name, options, {exercise: WRONG[exercise][slip]})
        assert not (all(np.array_equal(a, b) for a, b in zip(wrong, ours))
                    and all(np.array_equal(wrong_state[key], our_state[key]) for key in our_state))


def test_use_leaves_nesterov_to_the_library_and_counts_it() -> None:
    options = {"lr": 0.1, "momentum": 0.9, "nesterov": True}
    ours, _, _ = _train_prune_train("sgd", options, None)
    theirs, _, usage = _train_prune_train("sgd", options, {"masked_sgd_step": solutions.masked_sgd_step})
    assert usage.library["masked_sgd_step"] == 32 and not usage.student
    assert all(np.array_equal(a, b) for a, b in zip(theirs, ours))
