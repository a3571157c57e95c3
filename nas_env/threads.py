"""Torch's intra-op thread count for one block of code, restored afterwards.

Small networks (an agent's controller, a timing of reference children) run on a set number of
threads without changing the process's setting for what follows. Dividing the machine's cores
between worker processes is :mod:`nas_env.backends.threads`' job.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run a block with ``num_threads`` intra-op threads, then restore the previous count.

    Agents run their small networks (35 to 64 units wide) on one thread: extra threads only add
    synchronisation, and on a loaded machine OpenMP's waiting slows such an update many times
    over (``docs/agents.md``). Child training inside ``env.step`` keeps the caller's setting.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
