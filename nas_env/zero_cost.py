"""Zero-cost proxies: rank an untrained network from one minibatch, in one or two passes.

One function per score. Each takes a freshly built (untrained) ``model`` and works on a copy
where it must change the network (synflow), so scores do not depend on the order they are taken
in. Every gradient score runs the model in training mode (batch statistics), as the reference
implementations do. The variants, after the published definitions:

- ``synflow`` (Tanaka et al. 2020, as scored by Abdelfattah et al., "Zero-Cost Proxies for
  Lightweight NAS", ICLR 2021): a copy of the network without batch norm, in float64, every
  parameter replaced by its absolute value; the sum of the outputs for an all-ones input of
  batch 1 is back-propagated and the score is ``sum |w * dR/dw|`` over the weights.
- ``snip`` (Lee et al. 2019): ``sum |w * dL/dw|`` for the cross-entropy ``L`` of the minibatch.
- ``grad_norm``: the sum over weight tensors of the L2 norm of ``dL/dw`` (Abdelfattah et al.).
- ``jacob_cov`` (Mellor et al. 2020, v1 of "Neural Architecture Search without Training"): the
  per-image gradients of the summed outputs with respect to the input, their correlation matrix
  ``C`` with eigenvalues ``v``, and ``-sum(log(v + k) + 1 / (v + k))`` with ``k = 1e-5``.
- ``naswot`` (Mellor et al., ICML 2021): the kernel ``K = sum over ReLUs of c c^T + (1-c)(1-c)^T``
  of the images' binary activation codes ``c`` (input of each ``nn.ReLU`` > 0), scored
  ``log |det K|``.
- ``params``: trainable parameters (as NB201 counts them: every edge's module).
- ``live_params``: parameters on a path from the input to the output, read from synflow's pass
  (nonzero gradient). Edges that cannot reach the output, and everything upstream of a cell
  whose output is cut from its input, drop out (such cells train to chance accuracy).
- ``flops``: multiply-accumulates of the convolutions and linear layers executed for one image.

"Weights" are the parameters with two or more dimensions (convolution kernels, linear and
recurrent matrices): for convolutional networks these are exactly the convolution and linear
weights the reference implementations score. :func:`ensemble` combines scores per network
(mean of fixed-scale logs), so it is a reward that needs no population to rank against.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from nas_env.errors import check_choice

JACOB_COV_K = 1e-5
"""The ``k`` of jacob_cov's eigenvalue penalty (Mellor et al. 2020)."""


def _logits(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The logits of a model's output (language models return ``(logits, state)``)."""
    return out[0] if isinstance(out, tuple) else out


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = _logits(model(x))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _weights(model: nn.Module) -> Iterator[nn.Parameter]:
    return (p for p in model.parameters() if p.requires_grad and p.dim() >= 2)


def _loss_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model, x, y).backward()


def _synflow_pass(model: nn.Module, input_shape: Sequence[int]) -> nn.Module:
    """The float64, batch-norm-free, absolute-valued copy of ``model`` after synflow's backward."""
    net = copy.deepcopy(model)
    _drop_batchnorm(net)
    device = next(model.parameters()).device
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    _logits(net(x)).sum().backward()
    return net


def _drop_batchnorm(net: nn.Module) -> None:
    for name, child in net.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.Identity())
        else:
            _drop_batchnorm(child)


def _synflow_of(net: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(((p * p.grad).abs().sum() for p in _weights(net) if p.grad is not None), 0.0))


def _live_params_of(net: nn.Module) -> float:
    return float(sum(int(torch.count_nonzero(p.grad)) for p in net.parameters() if p.grad is not None))


def synflow(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Synaptic flow of ``model`` for an all-ones input of shape ``(1, *input_shape)``.

    Batch norm is removed (replaced by identity) on a float64 copy, as in the zero-cost reference:
    with it, the all-ones input would be normalised away, and float32 overflows on deep networks.
    """
    return _synflow_of(_synflow_pass(model, input_shape))


def live_params(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Parameters on a path from the input to the output: nonzero in synflow's backward pass.

    With every weight positive, no batch norm and an all-ones input nothing cancels, so a
    parameter's synflow gradient is zero exactly when no signal from the input reaches it or it
    does not reach the output (batch norm's own parameters are not counted).
    """
    return _live_params_of(_synflow_pass(model, input_shape))


def _snip_of(model: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(((p * p.grad).abs().sum() for p in _weights(model) if p.grad is not None), 0.0))


def _grad_norm_of(model: nn.Module) -> float:
    with torch.no_grad():
        return float(sum((p.grad.norm() for p in _weights(model) if p.grad is not None), 0.0))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP saliency ``sum |w * dL/dw|`` of the weights for the cross-entropy of ``(x, y)``."""
    _loss_gradients(model, x, y)
    value = _snip_of(model)
    model.zero_grad(set_to_none=True)
    return value


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over weight tensors of ``||dL/dw||_2`` for the cross-entropy of ``(x, y)``."""
    _loss_gradients(model, x, y)
    value = _grad_norm_of(model)
    model.zero_grad(set_to_none=True)
    return value


def jacob_cov(model: nn.Module, x: torch.Tensor) -> float:
    """Score of the correlations between the images' input gradients (higher: less correlated)."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = _logits(model(x))
    (grad,) = torch.autograd.grad(out.sum(), x)
    jac = grad.reshape(len(grad), -1).double().cpu().numpy()
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return math.nan
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + JACOB_COV_K) + 1.0 / (v + JACOB_COV_K)))


@contextmanager
def _removed_after(handles: list[RemovableHandle]) -> Iterator[None]:
    """Remove the hooks ``handles`` when the block ends, also when it raises (the model stays clean)."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _naswot_kernel(model: nn.Module, n: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Hooks every ``nn.ReLU`` of ``model``; the yielded kernel fills as the model runs on ``n`` images."""
    kernel = torch.zeros((n, n), dtype=torch.float64, device=device)

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.t()).add_((1.0 - codes) @ (1.0 - codes).t())

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"naswot needs nn.ReLU modules; {type(model).__name__} has none")
    with _removed_after([m.register_forward_pre_hook(hook) for m in relus]):
        yield kernel


def _logdet(kernel: torch.Tensor) -> float:
    return float(torch.linalg.slogdet(kernel)[1])


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """``log |det K|`` of the Hamming kernel of the images' ReLU activation codes.

    Raises:
        ValueError: ``model`` has no ``nn.ReLU`` module to read codes from.
    """
    with _naswot_kernel(model, len(x), x.device) as kernel:
        model.train()
        with torch.no_grad():
            model(x)
    return _logdet(kernel)


def params(model: nn.Module) -> float:
    """Trainable parameters of ``model``."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


@contextmanager
def _flop_counter(model: nn.Module) -> Iterator[list[int]]:
    """Hooks the convolutions and linear layers; the yielded ``[total]`` counts MACs per image."""
    total = [0]

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            total[0] += out[0].numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
        elif isinstance(module, nn.Linear):
            total[0] += out[0].numel() * module.in_features

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with _removed_after([m.register_forward_hook(hook) for m in layers]):
        yield total


def flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Multiply-accumulates of the convolutions and linear layers run for one input of ``input_shape``.

    Counted from the shapes each layer really sees, so layers the forward pass skips cost nothing.
    """
    device = next(model.parameters()).device
    with _flop_counter(model) as total:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    return float(total[0])


def measure(names: Sequence[str], model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Every single score in ``names`` of ``model`` on ``(x, y)``, sharing passes where scores can.

    Gives the same values as the per-score functions, in fewer passes: synflow and live_params
    read one synflow backward (which also counts the FLOPs); snip and grad_norm read one
    cross-entropy forward and backward, whose forward also fills naswot's kernel (naswot alone
    needs only a forward pass); jacob_cov has its own.

    Raises:
        ValueError: A name is not a single score (the message lists them).
    """
    for name in names:
        check_choice("zero_cost", name, SCORES)
    wanted = set(names)
    values: dict[str, float] = {}
    if wanted & {"synflow", "live_params", "flops"}:
        with _flop_counter(model) as total:
            net = _synflow_pass(model, x.shape[1:])  # the copy shares the hooks
        values.update(synflow=_synflow_of(net), live_params=_live_params_of(net), flops=float(total[0]))
    if wanted & {"snip", "grad_norm"}:
        if "naswot" in wanted:
            with _naswot_kernel(model, len(x), x.device) as kernel:
                _loss_gradients(model, x, y)
            values["naswot"] = _logdet(kernel)
        else:
            _loss_gradients(model, x, y)
        values.update(snip=_snip_of(model), grad_norm=_grad_norm_of(model))
        model.zero_grad(set_to_none=True)
    elif "naswot" in wanted:
        values["naswot"] = naswot(model, x)
    if "jacob_cov" in wanted:
        values["jacob_cov"] = jacob_cov(model, x)
    if "params" in wanted:
        values["params"] = params(model)
    return {name: values[name] for name in names}


ScoreFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
"""A score of a model on a minibatch ``(x, y)``."""

SCORES: dict[str, ScoreFn] = {
    "synflow": lambda m, x, y: synflow(m, x.shape[1:]),
    "snip": snip,
    "grad_norm": grad_norm,
    "jacob_cov": lambda m, x, y: jacob_cov(m, x),
    "naswot": lambda m, x, y: naswot(m, x),
    "params": lambda m, x, y: params(m),
    "live_params": lambda m, x, y: live_params(m, x.shape[1:]),
    "flops": lambda m, x, y: flops(m, x.shape[1:]),
}
"""Every single score by name (each takes the model and the minibatch)."""

LOG_SCORES = frozenset({"synflow", "snip", "grad_norm", "params", "live_params", "flops"})
"""Scores that grow multiplicatively (products of layer sizes); :func:`ensemble` takes their log."""

ENSEMBLES: dict[str, dict[str, float]] = {
    "ensemble": {"live_params": 1.0, "jacob_cov": 1.0},
}
"""Named ensembles: score name to the weight of its (log-)value divided by :data:`SCALES`.

``ensemble`` was chosen among rank and scaled-log combinations of the single scores on the first
half of a seeded NB201 sample and is reported on the other half (``docs/zero_cost.md``)."""

SCALES: dict[str, float] = {
    "synflow": 4.06,
    "snip": 0.260,
    "grad_norm": 0.264,
    "jacob_cov": 13.4,
    "naswot": 27.4,
    "params": 0.334,
    "live_params": 1.30,
    "flops": 0.416,
}
"""Standard deviation of each (log-)score over that design sample's cells (finite values), so the
terms of an ensemble weigh alike."""

ALL_SCORES: tuple[str, ...] = (*SCORES, *ENSEMBLES)
"""Every name :func:`score` accepts."""


def check_score(name: str) -> None:
    """Raise a one-line ``ValueError`` naming ``name`` and the allowed scores unless it is one."""
    check_choice("zero_cost", name, ALL_SCORES)


def components(name: str) -> tuple[str, ...]:
    """The single scores ``name`` needs (itself, or an ensemble's members)."""
    check_score(name)
    return tuple(ENSEMBLES[name]) if name in ENSEMBLES else (name,)


def ensemble(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted mean of the scaled (log-)scores in ``values``; NaN when a member is NaN.

    A score of 0 (a network through which nothing flows) is the worst possible: ``-inf``.
    """
    total = 0.0
    for name, w in weights.items():
        v = values[name]
        if name in LOG_SCORES:
            v = math.log(v) if v > 0 else -math.inf
        total += w * v / SCALES[name]
    return total / sum(weights.values())


def combine(name: str, values: Mapping[str, float]) -> float:
    """The value of score ``name`` from its members' ``values``, on the ensembles' scaled-log scale.

    A single score is its own one-member ensemble (``log(v) / scale`` or ``v / scale``), which
    keeps its order and makes every score a reward of order one.
    """
    return ensemble(values, ENSEMBLES.get(name, {name: 1.0}))


def score(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Score ``model`` by ``name`` (a single score or an ensemble) on the minibatch ``(x, y)``.

    The value is on :func:`combine`'s scale; the single-score functions give the raw values.

    Raises:
        ValueError: ``name`` is not a score (the message lists them).
    """
    return combine(name, measure(components(name), model, x, y))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Fix torch's global generator for the block (weight initialisation), restoring it after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
