"""The paper's distributed controller training: parameter-server shards and asynchronous replicas on Ray.

Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
(https://arxiv.org/abs/1611.01578), section 3.4 and figure 3: a parameter server of ``S`` shards
holds the controller's parameters; ``K`` controller replicas each pull the parameters, sample
``m`` children, wait for their rewards and push a gradient, which the shards apply asynchronously
(the paper: S = 20, K = 100, m = 8, 800 children training at once on 800 GPUs).

Here every shard, every replica and the budget keeper are Ray actors; each replica sends its
children to the env's evaluation backend (``backend="ray"``: one Ray task per child, retried
when its worker dies) and harvests rewards as they come. Replicas never wait for one another.
The controller, its sampling and its policy-gradient loss are those of :mod:`agents.reinforce`,
reused as they are; with ``replicas=1, shards=1`` the run *is* the synchronous controller (same
samples, same parameters), and it runs in this process, without Ray, so ``backend="pool"``
evaluates each batch of ``m`` children in parallel on one machine.

Rewards come from the env's evaluation service (:class:`nas_env.evaluation.Evaluation`: the env's
cache, seeds, reward and store, exactly what its last ``step`` does), not from stepping the env
token by token: ``step`` blocks on one child, and a replica has ``m`` in flight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import AnyEnv, SearchAgent, plain_info
from agents.parameter_server import Coordinator, InProcess, ParameterShard, identity, split_parameters
from agents.plan import token_vocab
from agents.reinforce import Controller, EMABaseline, ReinforceConfig, policy_gradient
from nas_env.threads import torch_threads


@dataclass(frozen=True)
class DistributedConfig:
    """How the controller's training is distributed (the controller itself: :class:`ReinforceConfig`).

    ``m``, the children each replica samples per gradient, is ``ReinforceConfig.batch_size``.
    """

    replicas: int = 1
    """K, controller replicas sampling and pushing gradients asynchronously (section 3.4: 100)."""
    shards: int = 1
    """S, parameter-server shards the controller's parameters are split over (section 3.4: 20)."""
    grads_per_update: int = 1
    """Shards apply the mean of this many gradients at once (section 4.2, PTB: 10; CIFAR: 1)."""
    child_backend: str | None = None
    """Evaluation backend set on each replica's env ("local", "pool", "ray"); None keeps the env's."""
    child_backend_kwargs: dict[str, Any] | None = None
    """Arguments of ``child_backend`` (``{"num_cpus": 2}``...)."""
    address: str | None = None
    """Ray cluster to join (default ``$RAY_ADDRESS``; neither starts a local Ray instance)."""
    max_replica_restarts: int = 2
    """Times a dead replica actor is replaced (its unreported children return to the budget)."""

    def __post_init__(self) -> None:
        """Validate, naming the bad value."""
        for name in ("replicas", "shards", "grads_per_update"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.max_replica_restarts < 0:
            raise ValueError(f"max_replica_restarts={self.max_replica_restarts!r} must be >= 0")

    @property
    def uses_ray(self) -> bool:
        """Replicas and shards are Ray actors (more than one of either); else all runs in-process."""
        return self.replicas > 1 or self.shards > 1


class ControllerReplica:
    """A controller replica: pull, sample ``m`` children, harvest their rewards, push a gradient.

    Args:
        index: Replica number k.
        env: An env (in-process) or the ``EnvSpec`` / pickled env to make in this actor.
        seed: The run's root seed (``env.reset(seed=...)``: children's training seeds).
        sample_seed: Seed of this replica's sampling generator.
        config: The controller's hyperparameters.
        vocab: Choices per token kind (sizes the controller's heads).
        assignment: Parameter names held by each shard.
        shards: Shard handles (Ray actors, or in-process wrappers).
        coordinator: Coordinator handle.
        state: Baseline and generator state to resume from.
        dist: The distribution settings (child backend).
    """

    def __init__(
        self,
        index: int,
        env: Any,
        seed: int,
        sample_seed: int,
        config: ReinforceConfig,
        vocab: dict[str, int],
        assignment: list[list[str]],
        shards: list[Any],
        coordinator: Any,
        state: dict[str, Any] | None,
        dist: DistributedConfig,
    ) -> None:
        if dist.uses_ray:
            torch.set_num_threads(1)
            from nas_env.backends.ray import import_ray

            self._get: Any = import_ray().get
            env = gym.make(env) if isinstance(env, gym.envs.registration.EnvSpec) else env
        else:
            self._get = identity
        self.env = env.unwrapped
        self.evaluation = self.env.evaluation
        if dist.child_backend is not None:
            self.evaluation.use_backend(dist.child_backend, **(dist.child_backend_kwargs or {}))
        self.env.reset(seed=seed)
        self.seed = seed
        self.index, self.config, self.assignment = index, config, assignment
        self.shards, self.coordinator = shards, coordinator
        self.controller = Controller(vocab, config)
        self.generator = torch.Generator().manual_seed(int(sample_seed))
        self.baseline = EMABaseline(config.ema_decay)
        self._num_layers: int | None = None
        self._in_order = not dist.uses_ray
        """Report children in sample order (the one in-process replica: a checkpoint then holds a
        prefix of the batch, and a resumed run continues it exactly)."""
        self._next_start = 0
        if state is not None and "generator" in state:
            self.baseline.value = state["baseline"]
            self.generator.set_state(state["generator"])
            self._next_start = int(state.get("next_start", 0))
        self._skip = int((state or {}).get("skip", 0))
        """Children of the first batch already in the history (a run resumed mid-batch)."""

    def run(self) -> int:
        """Sample, evaluate and push until the budget is spent; returns the gradients pushed."""
        pushed = 0
        m = self.config.batch_size
        while True:
            granted, sampled_before = self._get(self.coordinator.claim.remote(self.index, m))
            if granted == 0:
                return pushed
            pulled = self._get([s.pull.remote() for s in self.shards])
            self.controller.load_state_dict({n: t for _, params in pulled for n, t in params.items()})
            plan = self.controller.plan(self._schedule(sampled_before))
            with torch_threads(1):
                tokens = self.controller.sample(plan, granted, self.generator)
            rewards = [0.0] * granted
            archs = [self.env.space.decode(t) for t in tokens]
            done: dict[int, tuple[str, float, dict[str, Any]]] = {}
            reported = 0
            for i, reward, info in self.evaluation.evaluate_many(archs, self.seed):  # as they complete
                rewards[i] = float(reward)
                info = {**plain_info(info), "replica": self.index, "policy_version": pulled[0][0]}
                done[i] = (info["arch"], float(reward), info)
                if not self._in_order:  # Ray replicas: as they complete
                    self.coordinator.report.remote(self.index, *done.pop(i))
                while reported in done:  # in process: in sample order, past those already recorded
                    report = done.pop(reported)
                    if reported >= self._skip:
                        self.coordinator.report.remote(self.index, *report)
                    reported += 1
            self._skip = 0
            self._next_start = sampled_before + granted
            with torch_threads(1):
                grads = self.gradient(plan, tokens, rewards)
            for shard, names in zip(self.shards, self.assignment, strict=True):
                shard.push.remote({n: grads[n] for n in names})  # applied asynchronously
            self.baseline.update(rewards)
            self.coordinator.set_replica_state.remote(self.index, self.state())
            pushed += 1

    def gradient(self, plan: Any, tokens: list[list[int]], rewards: list[float]) -> dict[str, torch.Tensor]:
        """The gradient of :meth:`agents.reinforce.ReinforceAgent.update`'s loss (clipped the same way)."""
        policy_gradient(self.controller, self.baseline, self.config, plan, tokens, rewards)
        return {
            n: p.grad.detach().clone() for n, p in self.controller.named_parameters() if p.grad is not None
        }

    def _schedule(self, num_sampled: int) -> Any:
        if self.config.depth_schedule:
            depth = self.config.num_layers(num_sampled)
            if depth != self._num_layers:
                self.env.reset(options={"num_layers": depth})
                self._num_layers = depth
        return self.env.token_schedule()

    def state(self) -> dict[str, Any]:
        """Baseline, sampling generator state and the children sampled before the next batch."""
        return {
            "baseline": self.baseline.value,
            "generator": self.generator.get_state(),
            "next_start": self._next_start,
        }


# ---- the agent ------------------------------------------------------------------------------------------


class DistributedReinforceAgent(SearchAgent):
    """REINFORCE with the paper's parameter server and asynchronous replicas (Zoph & Le 2017, section 3.4).

    Args:
        env: A token env of this package, made with ``gym.make`` (replica actors make their own
            copies from ``env.spec``); give it ``cache_path`` so that all replicas share one store.
        seed: Root seed: the controller's initialisation, replica k's sampling, the children's seeds.
        **overrides: Fields of :class:`ReinforceConfig` (``batch_size`` is m) and of
            :class:`DistributedConfig`.
    """

    name = "distributed_reinforce"

    def __init__(self, env: AnyEnv, seed: int = 0, **overrides: Any) -> None:
        if isinstance(env, gym.vector.VectorEnv):
            raise ValueError("the distributed controller needs a single env, not a vector env")
        super().__init__(env, seed, **overrides)
        reinforce_names = [f.name for f in fields(ReinforceConfig)]
        self.config = cfg = ReinforceConfig(**{k: v for k, v in overrides.items() if k in reinforce_names})
        self.dist = DistributedConfig(**{k: v for k, v in overrides.items() if k not in reinforce_names})
        init_seed, sample_seed = np.random.SeedSequence(self.seed).generate_state(2)
        others = np.random.SeedSequence([self.seed, 1]).generate_state(self.dist.replicas)
        self.sample_seeds = [int(sample_seed), *(int(s) for s in others[1:])]
        depth = {"num_layers": cfg.max_layers} if cfg.depth_schedule else None  # every head exists
        env.reset(seed=self.seed, options=depth)
        schedule = env.unwrapped.token_schedule()  # type: ignore[attr-defined]
        self.vocab = token_vocab(schedule)
        self.controller = Controller(self.vocab, cfg)
        self.controller.reset_parameters(cfg.init_range, torch.Generator().manual_seed(int(init_seed)))
        sizes = {n: p.numel() for n, p in self.controller.named_parameters()}
        self.assignment = split_parameters(sizes, self.dist.shards)
        self._saved: dict[str, Any] = {"optimizers": None, "replicas": {}, "num_sampled": 0}
        self._actors: SimpleNamespace | None = None
        self._owns_ray = False
        self._restarts = 0

    def setting_names(self) -> list[str]:
        """Fields of :class:`ReinforceConfig` and of :class:`DistributedConfig`."""
        return [f.name for cls in (ReinforceConfig, DistributedConfig) for f in fields(cls)]

    def config_dict(self) -> dict[str, Any]:
        """The resolved hyperparameters, for the run's ``config.json``."""
        return {**asdict(self.config), **asdict(self.dist)}

    # ---- the run ----------------------------------------------------------------------------------------

    def _search(self, budget: int) -> None:
        actors = self._start()
        actors.get(actors.coordinator.set_budget.remote(budget))
        if not self.dist.uses_ray:
            actors.replicas[0].run.remote()
            return
        ray = actors.ray
        runs = {r.run.remote(): k for k, r in enumerate(actors.replicas)}
        while runs:
            done, _ = ray.wait(list(runs), num_returns=1, timeout=0.2)
            self._drain()
            for ref in done:
                k = runs.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError:
                    if self._restarts >= self.dist.max_replica_restarts:
                        raise
                    self._restarts += 1
                    ray.get(actors.coordinator.release.remote(k))
                    actors.replicas[k] = self._make_replica(k, actors.shards, actors.coordinator)
                    runs[actors.replicas[k].run.remote()] = k
        self._drain()

    def _drain(self) -> None:
        assert self._actors is not None
        for _, arch, reward, info in self._actors.get(self._actors.coordinator.drain.remote()):
            self._record(arch, reward, info)

    def _start(self) -> SimpleNamespace:
        """Create the shards, the coordinator and the replicas (once; kept until :meth:`close`)."""
        if self._actors is not None:
            return self._actors
        params = {n: p.detach() for n, p in self.controller.named_parameters()}
        optimizers = self._saved["optimizers"] or [None] * self.dist.shards
        shard_args = [
            ({n: params[n] for n in names}, self.config.learning_rate, self.dist.grads_per_update, opt)
            for names, opt in zip(self.assignment, optimizers, strict=True)
        ]
        claimed = self._saved["num_sampled"]
        if self.dist.uses_ray:
            from nas_env.backends.ray import connect_ray, import_ray

            ray = import_ray()
            self._owns_ray = connect_ray(self.dist.address)
            shard_cls = ray.remote(num_cpus=0)(ParameterShard)
            shards = [shard_cls.remote(*args) for args in shard_args]
            coordinator = ray.remote(num_cpus=0)(Coordinator).remote(claimed)
            get = ray.get
        else:
            ray = None
            shards = [InProcess(ParameterShard(*args)) for args in shard_args]
            coordinator = InProcess(Coordinator(claimed, sink=self._record))
            get = identity
        for k, restored in self._saved["replicas"].items():  # kept by a checkpoint before their next update
            coordinator.set_replica_state.remote(k, {n: v for n, v in restored.items() if n != "skip"})
        self._actors = SimpleNamespace(ray=ray, get=get, shards=shards, coordinator=coordinator, replicas=[])
        self._actors.replicas = [
            self._make_replica(k, shards, coordinator) for k in range(self.dist.replicas)
        ]
        return self._actors

    def _make_replica(self, k: int, shards: list[Any], coordinator: Any) -> Any:
        seed = self.sample_seeds[k]
        if self._restarts:  # a replacement samples afresh
            seed = int(np.random.SeedSequence([self.seed, 2, k, self._restarts]).generate_state(1)[0])
        env: Any = self.env
        if self.dist.uses_ray:  # each actor makes its own env
            env = env.spec if env.spec is not None else env.unwrapped
        state = self._saved["replicas"].get(k)
        args = (k, env, self.seed, seed, self.config, self.vocab, self.assignment, shards, coordinator)
        if not self.dist.uses_ray:
            return InProcess(ControllerReplica(*args, state, self.dist))
        assert self._actors is not None and self._actors.ray is not None
        replica_cls = self._actors.ray.remote(num_cpus=0)(ControllerReplica)
        return replica_cls.remote(*args, state, self.dist)

    def close(self) -> None:
        """Stop the actors (and Ray, if this agent started it); the state stays readable."""
        if self._actors is None:
            return
        self._saved = self._fetch_state()
        if self._actors.ray is not None:
            for actor in [*self._actors.replicas, *self._actors.shards, self._actors.coordinator]:
                self._actors.ray.kill(actor)
            if self._owns_ray:
                self._actors.ray.shutdown()
        self._actors = None

    # ---- checkpoints --------------------------------------------------------------------------------

    def _fetch_state(self) -> dict[str, Any]:
        if self._actors is None:
            return self._saved
        get = self._actors.get
        shard_states = get([s.state.remote() for s in self._actors.shards])
        for shard in shard_states:
            with torch.no_grad():
                for n, t in shard["params"].items():
                    self.controller.get_parameter(n).copy_(t)
        num_sampled, replicas = get(self._actors.coordinator.state.remote())
        return {
            "optimizers": [s["optimizer"] for s in shard_states],
            "replicas": replicas,
            "num_sampled": num_sampled,
        }

    def state_dict(self) -> dict[str, Any]:
        """Controller parameters (from the shards), shard optimizers, replica baselines and RNGs, history.

        Resuming restores all of these; children that were in flight are sampled afresh, so with
        more than one replica a resumed run is not sample-for-sample the uninterrupted one.
        """
        saved = self._fetch_state()
        return {
            "controller": self.controller.state_dict(),
            **saved,
            "num_sampled": len(self.history) if self._actors is None else saved["num_sampled"],
            "history": self._history_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the actors are recreated from it at the next ``search``)."""
        self.close()
        self.controller.load_state_dict(state["controller"])
        self._load_history(state["history"])
        # children claimed but never reported are not in the history: sample them again
        replicas, start = dict(state["replicas"]), len(self.history)
        saved = replicas.get(0)
        if not self.dist.uses_ray and (saved is None or "next_start" in saved):
            # the in-process replica records in sample order: its batch is sampled again from the
            # same generator state, and the children of it already in the history are not recorded twice
            start = int((saved or {}).get("next_start", 0))
            replicas[0] = {**(saved or {}), "skip": len(self.history) - start}
        self._saved = {"optimizers": state["optimizers"], "replicas": replicas, "num_sampled": start}
