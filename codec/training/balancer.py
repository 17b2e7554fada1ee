"""EnCodec's loss balancer: each loss on the reconstruction gets a share of the output gradient
in proportion to its lambda, whatever its raw scale.

Waveform L1's gradient at the output is ~1/sqrt(B*N), a spectral loss's can be 1000x that and
swings with the loudness of the batch; the balancer divides each raw gradient by an EMA of its
norm before weighting, so no term dominates because of its scale. Losses that do not reach the
reconstruction (commitment, MAE, AR, the frame loss) are added with their plain lambdas, and so
are the losses a config keeps out of the balancer (`training.unbalanced`, e.g. the adversarial
terms, as Vocos, HiFi-GAN and DAC weight them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch

Weight = Callable[[str], float]  # "loss/mel" -> its lambda


class LossBalancer:
    """The balanced backward and its running gradient norms (`ema`, saved with a training
    checkpoint so that a resumed run continues the same averages).

    Args:
        decay: EMA decay of each loss's gradient norm, in [0, 1).
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.ema: dict[str, float] = {}

    def backward(
        self,
        losses: dict[str, torch.Tensor],
        recon: torch.Tensor,
        weight: Weight,
        plain: Collection[str] = (),
    ) -> dict[str, float]:
        """Backward of `losses` through the reconstruction `recon` `[B, 1, N]`, each loss that
        depends on it scaled to its share `weight(key) / sum of weights`; returns
        `grad_norm/<loss>` (raw norms at the output).

        Losses named in `plain` (e.g. "adv", "feat") stay out of the shares: their raw
        gradient times their lambda is added to the balanced one, a plain weighted sum as
        Vocos, HiFi-GAN and DAC train. `stats/plain_to_balanced` is the norm of that added
        gradient over the balanced gradient's."""
        balanced = torch.zeros_like(recon)
        added = torch.zeros_like(recon)
        rest: list[torch.Tensor] = []
        norms: dict[str, float] = {}
        recon_keys = [k for k, v in losses.items() if v.requires_grad]
        total_weight = sum(weight(k) for k in recon_keys if _name(k) not in plain)
        for key in recon_keys:
            value = losses[key]
            (grad,) = torch.autograd.grad(value, recon, retain_graph=True, allow_unused=True)
            if grad is None:
                rest.append(weight(key) * value)
                continue
            name = _name(key)
            norm = float(grad.norm())
            norms["grad_norm/" + name] = norm
            if name in plain:
                added += weight(key) * grad
                continue
            ema = self.ema.get(name)
            ema = norm if ema is None else self.decay * ema + (1 - self.decay) * norm
            self.ema[name] = ema
            balanced += (weight(key) / total_weight) * grad / max(ema, 1e-12)
        if any(_name(k) in plain for k in recon_keys):
            norms["stats/plain_to_balanced"] = float(added.norm()) / max(
                float(balanced.norm()), 1e-12
            )
        tensors, grads = [recon], [balanced + added]
        if rest:
            tensors.append(torch.stack(rest).sum())
            grads.append(torch.ones((), device=recon.device))
        torch.autograd.backward(tensors, grads)
        return norms


def output_grad_norms(
    losses: dict[str, torch.Tensor], recon: torch.Tensor, weight: Weight
) -> dict[str, float]:
    """`grad_norm/<loss>`: the norm of each weighted loss's gradient at the reconstruction
    `[B, 1, N]`, so the balance between terms is visible in the logs of an unbalanced run.
    Losses that do not depend on the reconstruction are left out."""
    norms = {}
    for key, value in losses.items():
        if not value.requires_grad:
            continue
        (grad,) = torch.autograd.grad(
            weight(key) * value, recon, retain_graph=True, allow_unused=True
        )
        if grad is not None:
            norms["grad_norm/" + key.split("/", 1)[-1]] = float(grad.norm())
    return norms


def _name(key: str) -> str:
    """ "loss/adv" -> "adv"."""
    return key.split("/", 1)[-1]
