"""What a ``nas-search`` run is about to do, said before the first child: the plan and its ETA.

The plan names the env, the agent, the reward (what the number means), the fidelity, device and
precision, and the seconds per child measured on this machine (:mod:`nas_env.training.calibration`,
a short timing of reference children, cached), and from them the ETA of the budget. The same facts
go into ``config.json`` and ``best.json`` so that results read without the code.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from nas_env.training import calibration as cal
from nas_env.training.calibration import Calibration, calibrate, cpu_model, reference_archs
from nas_env.training.ptb import PTB_TRAIN_TOKENS, PTB_VALID_TOKENS, PtbFidelity
from nas_env.training.recipes import Fidelity

ACCURACY_KEYS = ("val_accuracy", "val_perplexity")
"""Terminal-info keys a reward is computed from, in order of preference."""


def evaluation_of(env: gym.Env[Any, Any]) -> Any:
    """The env's evaluation service (``env.unwrapped.evaluation``: evaluator, reward, backend)."""
    inner: Any = env.unwrapped
    return getattr(inner, "evaluation", inner)


def reward_definition(env: gym.Env[Any, Any]) -> str:
    """One line saying what the env's reward is (the reward function's docstring, the table column)."""
    fn = getattr(evaluation_of(env), "reward_fn", None)
    while isinstance(fn, functools.partial):
        fn = fn.func
    text = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ") if fn is not None else ""
    text = text.replace("``", "")  # reStructuredText literals read as plain text on a terminal
    column = getattr(getattr(evaluation_of(env), "evaluator", None), "reward_metric", None)
    if column:
        text += f" The accuracy is the NB201 table's column {column} / 100 (looked up, not trained)."
    return text.strip() or "the env's terminal reward"


def _fidelity_name(env_id: str, env_kwargs: dict[str, Any]) -> str | None:
    """The fidelity the children are scored at (``fidelity=`` or the env's default), or None."""
    if env_kwargs.get("fidelity") is not None:
        return str(env_kwargs["fidelity"])
    creator: Any = gym.spec(env_id).entry_point
    if isinstance(creator, str):
        from gymnasium.envs.registration import load_env_creator

        creator = load_env_creator(creator)
    default = inspect.signature(creator).parameters.get("fidelity")
    return None if default is None or default.default is None else str(default.default)


def recipe_text(recipe: dict[str, Any]) -> str:
    """What a recipe trains, in a few words (CIFAR: images x epochs; PTB: tokens x epochs, model)."""
    r = recipe
    epochs = f"{r.get('epochs')} epoch{'s' if r.get('epochs') != 1 else ''}"
    if "train_images" in r:
        return f"{r['train_images']:,} images x {epochs} at {r['resolution']}x{r['resolution']}"
    if "train_tokens" in r:
        tokens = f"{r['train_tokens']:,}" if r["train_tokens"] else f"all {PTB_TRAIN_TOKENS:,}"
        return (
            f"{tokens} training tokens x {epochs}, {r['num_layers']} layers x "
            f"{r['hidden_size']} units, {r['batch_size']} streams x {r['bptt']} steps, {r['optimizer']}"
        )
    return ", ".join(f"{k}={v}" for k, v in list(r.items())[:4])


def _reward_at_fidelity(recipe: dict[str, Any] | None) -> str:
    """The sentence that says what the accuracy (or perplexity) is at this recipe, or ""."""
    if recipe is None:
        return ""
    if "reward_epochs" in recipe and "valid_images" in recipe:
        return (
            f" At this fidelity the accuracy is the best validation accuracy (on "
            f"{recipe['valid_images']:,} images) of the last {recipe['reward_epochs']} epoch(s)."
        )
    if "valid_tokens" in recipe:
        tokens = min(recipe["valid_tokens"] or PTB_VALID_TOKENS, PTB_VALID_TOKENS)
        return f" At this fidelity the perplexity is the last epoch's, on {tokens:,} validation tokens."
    return ""


def _timer(plan: Plan, evaluator: Any, space: Any) -> Callable[[], Calibration] | None:
    """Times reference children of ``space`` at the evaluator's recipe (None: nothing trains)."""
    recipe = getattr(evaluator, "fidelity", None)
    device = plan.device or "cpu"
    archs = reference_archs(space)
    if isinstance(recipe, Fidelity) and hasattr(evaluator, "build_model"):
        builders: list[Callable[[], Any]] = [functools.partial(evaluator.build_model, a) for a in archs]
        plan.timed = f"{cal.timed_images(recipe)} random images"
        measure: cal.Measure = cal.time_cnn_child
    elif isinstance(recipe, PtbFidelity) and getattr(evaluator, "level", "word") == "word":
        from nas_env.builders.language_model import build_language_model
        from nas_env.data.ptb import WORD_VOCAB_SIZE

        r = recipe
        args = (WORD_VOCAB_SIZE, r.hidden_size, r.num_layers, r.dropout, r.init_scale, r.adaptive_softmax)
        builders = [functools.partial(build_language_model, a, *args) for a in archs]
        plan.timed = f"{r.batch_size} streams x {r.bptt} random tokens"
        measure = cal.time_language_model
    else:
        return None
    precisions = (plan.precision,)
    return functools.partial(
        calibrate, recipe, builders, plan.space, device, plan.threads, precisions=precisions, measure=measure
    )


@dataclass
class Plan:
    """The facts of a run that its outputs and its first lines state."""

    env: str
    agent: str
    space: str
    reward: str
    fidelity: str | None
    recipe: dict[str, Any] | None
    device: str | None
    workers: int = 1
    threads: int = 1
    calibration: Calibration | None = None
    accuracy_key: str | None = None
    timer: Callable[[], Calibration] | None = field(default=None, repr=False)
    """Times the reference children (cached per machine); None when children are not trained."""
    retrain_space: str | None = None
    """``nas-retrain --space`` of this env's children (None: NB201's cells, looked up in its table)."""
    timed: str = ""
    """What one timed training step of a reference child holds, for the plan's words."""
    measure_seconds: float = 0.0
    """Seconds :meth:`measure` took (0 when the figures came from the cache)."""

    @classmethod
    def of(
        cls, env: gym.Env[Any, Any], env_id: str, env_kwargs: dict[str, Any], agent: str, workers: int = 1
    ) -> Plan:
        """Read the plan off a made env; time reference children when its children train (cached)."""
        import torch

        inner: Any = env.unwrapped
        evaluator = getattr(evaluation_of(env), "evaluator", None)
        space = str(getattr(getattr(inner, "space", None), "name", "cnn"))
        fidelity = _fidelity_name(env_id.rpartition(":")[2], env_kwargs)
        recipe_obj = getattr(evaluator, "fidelity", None)
        recipe = recipe_obj.__dict__.copy() if dataclasses.is_dataclass(recipe_obj) else None
        device = str(getattr(evaluator, "device", "")) or None
        metrics = tuple(getattr(evaluator, "metric_names", ()))
        accuracy_key = next((k for k in ACCURACY_KEYS if k in metrics), None)
        threads = max(1, torch.get_num_threads() // workers)
        reward = reward_definition(env) + _reward_at_fidelity(recipe)
        plan = cls(env_id, agent, space, reward, fidelity, recipe, device, workers, threads)
        plan.accuracy_key = accuracy_key
        ptb = "ptb" if getattr(inner, "level", "word") == "word" else "ptb-char"
        plan.retrain_space = {"cnn": "cnn", "rnn-cell": ptb}.get(space)
        if hasattr(inner, "space"):
            plan.timer = _timer(plan, evaluator, inner.space)
        return plan

    def measure(self) -> None:
        """Time the reference children, unless this machine did before (seconds, then cached)."""
        if self.timer is not None and self.calibration is None:
            start = time.perf_counter()
            self.calibration = self.timer()
            self.measure_seconds = 0.0 if self.calibration.cached else time.perf_counter() - start

    def described(self) -> dict[str, Any]:
        """The plan as JSON fields (for ``config.json`` and ``best.json``)."""
        out: dict[str, Any] = {
            "reward_definition": self.reward,
            "accuracy_key": self.accuracy_key,
            "fidelity": self.fidelity,
            "fidelity_recipe": self.recipe,
            "device": self.device,
        }
        if self.calibration is not None:
            out["seconds_per_child_measured"] = {
                "cpu": self.calibration.cpu,
                "threads_per_child": self.calibration.threads,
                "workers": self.workers,
                "reference_children": [round(s, 1) for s in self.calibration.seconds[self.precision]],
                "by_precision": {p: round(sum(v) / len(v), 1) for p, v in self.calibration.seconds.items()},
                "measured_at": self.calibration.measured_at,
            }
        return out

    @property
    def precision(self) -> str:
        """The precision children train in (the resolved recipe's)."""
        return str((self.recipe or {}).get("precision", "fp32"))

    def accuracy_fields(self, info: dict[str, Any]) -> dict[str, Any]:
        """``{"accuracy_percent": ...}`` (or the perplexity) of one evaluation, for best.json."""
        if self.accuracy_key == "val_accuracy" and isinstance(info.get("val_accuracy"), float):
            return {"accuracy_percent": round(100 * info["val_accuracy"], 2)}
        if self.accuracy_key == "val_perplexity" and isinstance(info.get("val_perplexity"), float):
            return {"val_perplexity": info["val_perplexity"]}
        return {}

    def bar_text(self, best: Any) -> str:
        """The progress bar's text for the best evaluation so far: its accuracy, then its reward."""
        accuracy = self.accuracy_fields(best.info)
        if "accuracy_percent" in accuracy:
            return f"best acc {accuracy['accuracy_percent']:.1f}% (reward {best.reward:.4f})"
        if "val_perplexity" in accuracy:
            return f"best ppl {accuracy['val_perplexity']:.1f} (reward {best.reward:.4f})"
        return f"best reward {best.reward:.4f}"

    def eta_seconds(self, children: int) -> float | None:
        """Expected wall seconds for ``children`` more children (mean reference child), or None."""
        if self.calibration is None:
            return None
        return self.calibration.per_child(self.precision)[1] * children / self.workers

    def head(self, budget: int, done: int) -> list[str]:
        """The plan's first lines, printed at once: what runs, what the reward is, how children train."""
        fidelity = "none: looked up in a table, no training" if "table" in self.reward else "-"
        if self.recipe is not None:
            name = self.fidelity or "the default"
            fidelity = f"{name} ({recipe_text(self.recipe)}), {self.device}, {self.precision}"
        elif self.fidelity is not None:
            fidelity = f"{self.fidelity}, {self.device}"
        return [
            f"nas-search: {self.env}, agent {self.agent}, {budget - done} children to go of {budget}",
            f"  reward: {self.reward}",
            f"  fidelity: {fidelity}",
        ]

    def timing(self, budget: int, done: int, time_budget: float | None) -> list[str]:
        """The plan's last lines, after :meth:`measure`: seconds per child here, the ETA, how to stop."""
        out = []
        eta = self.eta_seconds(budget - done)
        if self.calibration is not None and eta is not None:
            c = self.calibration
            low, mean, high = c.per_child(self.precision)
            threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
            how = f"{self.workers} workers x {threads}" if self.workers > 1 else f"1 process, {threads}"
            when = (
                f"timed now in {self.measure_seconds:.1f} s"
                if not c.cached
                else f"timed {c.measured_at}, cached in {cal.cache_path()}"
            )
            count = len(c.seconds[self.precision])
            out += [
                f"  time per child on this machine ({c.cpu}, {how}, {self.precision}): {duration(low)} to "
                f"{duration(high)} over {count} random children of this space, mean {duration(mean)}",
                f"    (estimated from 1-{cal.TIMED_STEPS} training steps of {self.timed} per child after a "
                f"warm-up step, scaled to the recipe's steps; {when})",
            ]
            when_done = "%H:%M" if eta < 20 * 3600 else "%a %d %b %H:%M"
            finish = time.strftime(when_done, time.localtime(time.time() + eta))
            out.append(
                f"  ETA: {duration(eta)} for {budget - done} children (around {finish}) at that mean; "
                "real children vary, and the bar's s/child follows them"
            )
        else:
            out.append("  time per child: shown on the bar from the first child on")
        if time_budget is not None:
            out.append(f"  stops after {duration(time_budget)} of wall clock (--time-budget)")
        out.append("  Ctrl-C stops cleanly; --resume continues")
        return out


def duration(seconds: float) -> str:
    """Seconds as a short reading: "4.2 s", "95 s", "12 min", "3.4 h"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["Plan", "cpu_model", "duration", "reward_definition"]
