"""The exercises of the course: the function each asks for, what it covers, the notebook that derives it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """One exercise: the function the student writes, what it covers, the notebook that derives it."""

    name: str
    covers: str
    notebook: str


EXERCISES: tuple[Exercise, ...] = (
    Exercise("linear_forward", "a layer's forward pass Z = A W + b", "01"),
    Exercise("layer_backward", "dW = Aᵀδ, db = Σ_rows δ, δ_prev = (δ Wᵀ) ⊙ relu'(Z_prev)", "02"),
    Exercise("softmax_cross_entropy_grad", "∂L/∂z = (P − Y)/n of softmax cross-entropy", "02"),
    Exercise("squared_error_softmax_grad", "the squared error's gradient through the softmax Jacobian", "02"),
    Exercise("unbroadcast", "the gradient of a broadcast operand: sum over the axes broadcasting added or "
             "stretched", "03"),
    Exercise("masked_sgd_step", "SGD with momentum keeping pruned weights and their velocity at 0", "04"),
    Exercise("masked_adam_step", "Adam keeping pruned weights and both moments at 0", "04"),
    Exercise("masked_step_property", "a hypothesis property of your own: a masked step keeps pruned weights "
             "and their velocity at 0", "04"),
    Exercise("global_magnitude_masks", "global magnitude pruning with exactly round(s·N_w) pruned", "05"),
    Exercise("obd_saliency", "Optimal Brain Damage's saliency ½ H_qq w_q²", "05"),
    Exercise("pruned_layer_error", "the error a pruned layer makes: ΔZ = −X ΔW, (1/n)‖ΔZ‖² = tr(ΔWᵀRΔW) "
             "and its diagonal estimate", "06"),
    Exercise("pruned_unit_variance", "how pruning shrinks a unit's spread: Var(z_k) = w_kᵀ Cov(X) w_k "
             "before and after, and the uncorrelated estimate φ_k", "06"),
    Exercise("obs_prune_one", "one Optimal Brain Surgeon step: remove, move the rest, shrink H⁻¹", "08"),
    Exercise("reconstruct_layer", "least-squares refit of one layer's surviving weights and bias", "08"),
    Exercise("distillation_kl_grad", "the gradient T(p⁽²⁾ − p⁽¹⁾)/n of the KL distillation loss", "08"),
    Exercise("remove_neuron", "compaction: delete a dead neuron, folding its constant output", "09"),
    Exercise("layer_flops", "a layer's FLOPs per input: dense 2·d_in·d_out + d_out, effective 2·nnz(W) + "
             "alive neurons", "09"),
)


__all__ = ["EXERCISES", "Exercise"]
