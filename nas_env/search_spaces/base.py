"""The interface every search space implements.

A search space turns a sequence of integer tokens (one per env step) into an architecture, and
says for every step which token type comes and how many choices it has (the *token schedule*).
The schedule of a space does not depend on earlier tokens, so masks depend on the step alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np

from nas_env.errors import InvalidArchitectureError
from nas_env.records import TokenSpec


class Architecture(Protocol):
    """Anything with a canonical, round-tripping string form."""

    def to_str(self) -> str:
        """Return the canonical string form."""
        ...


ArchT = TypeVar("ArchT", bound=Architecture)


class SearchSpace(ABC, Generic[ArchT]):
    """A token-by-token search space.

    Subclasses define :meth:`schedule` (for the current size), :meth:`decode`, :meth:`encode` and
    :meth:`parse`; the rest follows.
    """

    name: str = "search-space"

    @abstractmethod
    def schedule(self) -> tuple[TokenSpec, ...]:
        """Return the token schedule of the current configuration, one ``TokenSpec`` per step."""

    @property
    @abstractmethod
    def max_steps(self) -> int:
        """Most steps an episode can have in any configuration this space allows (sizes observations)."""

    @property
    def max_vocab(self) -> int:
        """Largest number of choices of any step (sizes the ``Discrete`` action space)."""
        return max(spec.num_choices for spec in self.schedule())

    @abstractmethod
    def decode(self, tokens: Sequence[int]) -> ArchT:
        """Turn a complete token sequence into an architecture.

        Raises:
            InvalidArchitectureError: Wrong length or a token out of its step's range.
        """

    @abstractmethod
    def encode(self, arch: ArchT) -> list[int]:
        """Turn an architecture of this space back into its token sequence.

        Raises:
            InvalidArchitectureError: The architecture is not in this space.
        """

    @abstractmethod
    def parse(self, text: str) -> ArchT:
        """Parse the canonical string form.

        Raises:
            InvalidArchitectureError: The string is malformed; the message says where.
        """

    def resized(self, num_layers: int) -> SearchSpace[ArchT]:
        """The same space at another size (``reset(options={"num_layers": n})``).

        Raises:
            ValueError: This space has a fixed size.
        """
        raise ValueError(
            f"search space {self.name!r} has a fixed size; num_layers={num_layers} is not allowed"
        )

    def mask(self, step: int) -> np.ndarray:
        """Valid actions at ``step``: a bool array of shape ``(max_vocab,)``, never all False."""
        n = self.schedule()[step].num_choices
        return np.arange(self.max_vocab) < n

    def sample(self, rng: np.random.Generator) -> list[int]:
        """Draw a uniformly random valid token sequence."""
        return [int(rng.integers(spec.num_choices)) for spec in self.schedule()]

    def check_tokens(self, tokens: Sequence[int]) -> tuple[TokenSpec, ...]:
        """Validate a complete token sequence against the schedule and return the schedule.

        Raises:
            InvalidArchitectureError: Wrong length or a token out of its step's range.
        """
        sched = self.schedule()
        if len(tokens) != len(sched):
            raise InvalidArchitectureError(
                f"{self.name}: expected {len(sched)} tokens, got {len(tokens)}: {list(tokens)}"
            )
        for step, (tok, spec) in enumerate(zip(tokens, sched, strict=True)):
            if not 0 <= int(tok) < spec.num_choices:
                raise InvalidArchitectureError(
                    f"{self.name}: token {tok} at step {step} ({spec.kind}) is out of range; "
                    f"expected 0..{spec.num_choices - 1} for choices {list(spec.choices)}"
                )
        return sched
