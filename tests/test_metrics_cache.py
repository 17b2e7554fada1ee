"""The cached mel transforms must work for training after being first built in inference mode."""

from __future__ import annotations

import torch

from codec import metrics


def test_mel_built_in_inference_mode_still_supports_autograd() -> None:
    metrics._MEL_CACHE.clear()
    torch.manual_seed(0)
    ref = torch.randn(1, 1, 4800)
    with torch.inference_mode():
        metrics.mel_distance(ref.clone(), ref.clone())  # builds the cache inside inference mode
    est = torch.randn(1, 1, 4800, requires_grad=True)
    loss = metrics.mel_distance(est, ref)
    loss.backward()
    assert est.grad is not None and torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
