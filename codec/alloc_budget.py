"""A ceiling on the tensor memory a model build may allocate.

`load_codec` builds a model from a `config.json` that anyone may have edited. A config within
every per-field bound can still ask for a model of hundreds of GB (64 layers of width 8192);
inside `AllocationBudget` every tensor factory call (`torch.empty`, `torch.zeros`, ...) counts
its elements first and raises `AllocationBudgetError` once the running total would pass the
limit, before the tensor exists, so nothing large is allocated or initialised.

It replaces a build on the meta device, which gave the same guarantee but cost ~2 s of CPU on
the first load in a process (weight norm on meta tensors runs torch's Python reference
kernels), i.e. a fifth of the app's start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

_SIZED = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full}


class AllocationBudgetError(RuntimeError):
    """A build asked for more tensor elements than its budget."""

    def __init__(self, requested: int, limit: int) -> None:
        super().__init__(f"the build asked for more than {limit:,} tensor values ({requested:,})")
        self.requested, self.limit = requested, limit


def _numel_from_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """Elements a sized factory call (`torch.empty(2, 3)`, `torch.zeros((2, 3))`,
    `torch.full((2, 3), v)`) will create, or None when the size cannot be read."""
    size = kwargs.get("size", args[0] if args else None)
    if isinstance(size, int):
        dims: tuple[Any, ...] = tuple(a for a in args if isinstance(a, int))
    elif isinstance(size, tuple | list | torch.Size):
        dims = tuple(size)
    else:
        return None
    if not all(isinstance(d, int) for d in dims):
        return None
    return math.prod(dims)


class AllocationBudget(TorchFunctionMode):
    """Count the elements created by tensor factories inside the block; refuse past `limit`.

    Example:
        with AllocationBudget(10_000_000):
            model = Model.from_config(untrusted_config)  # AllocationBudgetError if too big
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = int(limit)
        self.total = 0
        self._factories: set[Callable[..., Any]] = set(_device_constructors())

    def _add(self, n: int) -> None:
        if self.total + n > self.limit:
            raise AllocationBudgetError(self.total + n, self.limit)
        self.total += n

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        counted = False
        if func in _SIZED:
            n = _numel_from_size(args, kwargs)
            if n is not None:
                self._add(n)  # before the tensor exists
                counted = True
        out = func(*args, **kwargs)
        if not counted and func in self._factories and isinstance(out, torch.Tensor):
            self._add(out.numel())
        return out
