"""Search agents: the paper's REINFORCE controller, random search, regularized evolution, SB3 agents.

All of them implement :class:`~agents.base.SearchAgent`; build one by name with
:func:`~agents.base.make_agent`.
"""

from agents.base import AGENT_NAMES, Evaluation, SearchAgent, make_agent

__all__ = ["AGENT_NAMES", "Evaluation", "SearchAgent", "make_agent"]
