"""The CUDA training path: one training step captured as a CUDA graph, replayed per batch.

A small tabular network on a GPU is launch-bound: each step is some 60 small kernels, and
issuing them from Python costs more than running them. Here the whole step (gather of the
batch rows by index, dropout masks, forward, loss, ``autograd.grad``, the fused Adam update and
the loss sum) is captured once as a CUDA graph; an epoch is then one ``randperm`` on the device
and, per full batch, one index copy and one ``graph.replay()``. The last, partial batch runs
the same step eagerly. Nothing reads a value back to the host inside an epoch; the validation
AUC is computed on the device (:func:`auc_on_device`) at the end of it.

If capture fails (an operation that is not capturable on this build), the caller falls back to
the eager loop; :func:`capture_steps` restores the weights and optimizer state it touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

WARMUP_STEPS = 3
"""Eager steps on a side stream before capture (cuBLAS handles, autograd buffers); their
effect on the weights is undone before training starts."""


class _Net(Protocol):
    def inputs(self, z_num: Tensor, x_cat: Tensor) -> Tensor: ...
    def head(self, h: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor: ...


class _Optimizer(Protocol):
    def step(self, grads: Sequence[Tensor]) -> None: ...


class GraphedEpoch:
    """Runs training epochs over device tensors ``(z, cat, y)`` with a captured step."""

    def __init__(
        self,
        net: _Net,
        weights: Sequence[Tensor],
        opt: _Optimizer,
        state: Sequence[Tensor],
        data: tuple[Tensor, Tensor, Tensor],
        batch_size: int,
        hidden: Sequence[int],
        dropout: float,
        pos_weight: Tensor | None,
    ) -> None:
        self.net, self.weights, self.opt = net, list(weights), opt
        self.z, self.cat, self.y = data
        self.bs, self.hidden, self.p = batch_size, list(hidden), dropout
        self.pos_weight = pos_weight
        self.device = self.z.device
        self.has_cat = self.cat.shape[1] > 0
        self.loss_sum = torch.zeros((), device=self.device)
        self.idx = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self.graph = capture_steps(self._step, self.idx, state)

    def _step(self, idx: Tensor) -> None:
        rows = idx.shape[0]
        z = self.z.index_select(0, idx)
        y = self.y.index_select(0, idx)
        h = self.net.inputs(z, self.cat.index_select(0, idx)) if self.has_cat else z
        masks = None
        if self.p > 0:  # inverted dropout, drawn from the (graph-safe) default CUDA generator
            scale = 1.0 / (1.0 - self.p)
            masks = [
                (torch.rand(rows, k, device=self.device) >= self.p).to(torch.float32).mul_(scale)
                for k in self.hidden
            ]
        logits = self.net.head(h, masks)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight)
        grads = torch.autograd.grad(loss, self.weights)
        self.opt.step(grads)
        self.loss_sum.add_(loss.detach(), alpha=rows)

    def run(self, generator: torch.Generator) -> Tensor:
        """One epoch in a fresh random order; returns the summed training loss (on device)."""
        n, bs = self.y.shape[0], self.bs
        perm = torch.randperm(n, generator=generator, device=self.device)
        self.loss_sum.zero_()
        full = n // bs
        for i in range(full):
            self.idx.copy_(perm[i * bs : (i + 1) * bs])
            self.graph.replay()
        if full * bs < n:
            self._step(perm[full * bs :])
        return self.loss_sum


def capture_steps(step: Any, idx: Tensor, state: Sequence[Tensor]) -> torch.cuda.CUDAGraph:
    """Capture ``step(idx)`` as a CUDA graph, leaving ``state`` as it was before warm-up."""
    saved = [t.detach().clone() for t in state]
    try:
        side = torch.cuda.Stream(device=idx.device)
        side.wait_stream(torch.cuda.current_stream(idx.device))
        with torch.cuda.stream(side):
            idx.copy_(torch.arange(idx.shape[0], device=idx.device))
            for _ in range(WARMUP_STEPS):
                step(idx)
        torch.cuda.current_stream(idx.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(idx)
        return graph
    finally:
        with torch.no_grad():
            for t, s in zip(state, saved, strict=True):
                t.copy_(s)


def auc_on_device(y: Tensor, scores: Tensor) -> float:
    """ROC AUC (Mann-Whitney, ties counted half) computed where the tensors live.

    NaN when one class is missing or a score is not finite, like sklearn's use in the loop.
    """
    y = y.reshape(-1)
    s = scores.reshape(-1).to(torch.float64)
    n_pos = float(y.sum().item())
    n_neg = float(y.numel()) - n_pos
    if n_pos == 0 or n_neg == 0 or not bool(torch.isfinite(s).all().item()):
        return float("nan")
    order = torch.argsort(s)
    sorted_s = s[order]
    _, counts = torch.unique_consecutive(sorted_s, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    avg_rank = ends - (counts.to(torch.float64) - 1) / 2  # 1-based average rank of each tie group
    ranks = torch.repeat_interleave(avg_rank, counts)
    pos_rank_sum = float((ranks * y[order].to(torch.float64)).sum().item())
    return (pos_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def graphed_epoch_or_none(**kwargs: Any) -> GraphedEpoch | None:
    """A :class:`GraphedEpoch`, or None (with a warning) when this build cannot capture it."""
    try:
        return GraphedEpoch(**kwargs)
    except (RuntimeError, NotImplementedError) as exc:
        log.warning("CUDA graph capture failed (%s); training with the eager loop", exc)
        return None
