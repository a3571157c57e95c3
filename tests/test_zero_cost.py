"""Zero-cost scores on real small networks: hand-checked values, real NB201 / CNN / PTB children."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bench_modules import load_benchmark
from torch import nn

from nas_env import zero_cost as zc
from nas_env.builders.nb201 import NB201Network
from nas_env.evaluators.zero_cost import WORST_REWARD, ZeroCostEvaluator, zero_cost_reward
from nas_env.search_spaces.cnn import CnnArchitecture
from nas_env.search_spaces.nb201 import NB201Architecture
from nas_env.store import ResultsStore


def tiny_conv() -> nn.Module:
    """conv 3->4 (3x3, no bias), ReLU, global pooling, linear 4->2: 108 + 10 parameters."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def test_params_and_flops_of_a_tiny_conv() -> None:
    model = tiny_conv()
    assert zc.params(model) == 3 * 4 * 9 + 4 * 2 + 2
    # 8x8 outputs x 4 channels x (3 inputs x 9 taps), then 2 outputs x 4 inputs
    assert zc.flops(model, (3, 8, 8)) == 8 * 8 * 4 * 27 + 2 * 4


def test_synflow_of_a_linear_chain_is_depth_times_the_product_of_abs_weights() -> None:
    torch.manual_seed(0)
    chain = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    w1, w2 = (layer.weight.detach().double().abs() for layer in chain)
    flow = float(torch.ones(2, dtype=torch.float64) @ w2 @ w1 @ torch.ones(3, dtype=torch.float64))
    # R = 1^T |W2| |W1| 1 is linear in each layer: sum_ij w_ij dR/dw_ij = R per layer, 2 R in all
    assert zc.synflow(chain, (3,)) == pytest.approx(2 * flow, rel=1e-12)
    # batch norm is dropped (the reference's bn=False), and the model itself is untouched
    with_bn = nn.Sequential(chain[0], nn.BatchNorm1d(4), chain[1])
    assert zc.synflow(with_bn, (3,)) == pytest.approx(2 * flow, rel=1e-12)
    assert chain[0].weight.min() < 0 and chain[0].weight.dtype == torch.float32


def test_naswot_is_the_log_determinant_of_the_hamming_kernel() -> None:
    # codes [1, 0] and [1, 1]: the kernel counts agreeing units, [[2, 1], [1, 2]], det 3
    x = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    assert zc.naswot(nn.Sequential(nn.ReLU()), x) == pytest.approx(math.log(3))
    with pytest.raises(ValueError, match=r"naswot needs nn\.ReLU"):
        zc.naswot(nn.Sequential(nn.Linear(2, 2)), x)


def test_jacob_cov_of_a_linear_map_sees_perfectly_correlated_gradients() -> None:
    # every image's input gradient is W^T 1: the correlation matrix is all ones, eigenvalues n, 0...
    model, n, k = nn.Linear(5, 3, bias=False), 4, zc.JACOB_COV_K
    expected = -(math.log(n + k) + 1 / (n + k) + (n - 1) * (math.log(k) + 1 / k))
    assert zc.jacob_cov(model, torch.randn(n, 5)) == pytest.approx(expected, rel=1e-6)


def test_snip_and_grad_norm_against_autograd_by_hand() -> None:
    torch.manual_seed(0)
    model, x, y = tiny_conv(), torch.randn(6, 3, 8, 8), torch.randint(0, 2, (6,))
    weights = [model[0].weight, model[4].weight]  # the weights: conv kernel and linear matrix
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    assert zc.snip(model, x, y) == pytest.approx(
        sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads, strict=True))
    )
    assert zc.grad_norm(model, x, y) == pytest.approx(sum(float(g.norm()) for g in grads))


CUT = NB201Architecture.from_str(  # node 3 reads only node 2, which reads nothing: output cut off
    "|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"
)
CONV = NB201Architecture(("nor_conv_3x3",) * 6)


def test_live_params_drops_everything_a_cut_cell_disconnects() -> None:
    torch.manual_seed(0)
    cut = NB201Network(CUT, cells_per_stage=1)
    assert zc.live_params(cut, (3, 8, 8)) == 10  # only the classifier's bias still matters
    conv = NB201Network(CONV, cells_per_stage=1)
    batchnorm = sum(
        p.numel() for m in conv.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    assert zc.live_params(conv, (3, 8, 8)) == zc.params(conv) - batchnorm
    assert zc.synflow(cut, (3, 8, 8)) == 0 < zc.synflow(conv, (3, 8, 8))


def test_measure_shares_passes_but_gives_each_functions_value() -> None:
    torch.manual_seed(0)
    arch = NB201Architecture.from_str(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    )
    model = NB201Network(arch, channels=8, cells_per_stage=1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    shared = zc.measure(list(zc.SCORES), model, x, y)
    alone = {name: fn(model, x, y) for name, fn in zc.SCORES.items()}
    assert shared.keys() == alone.keys()
    for name in zc.SCORES:
        assert shared[name] == pytest.approx(alone[name], rel=1e-5), name
    assert all(math.isfinite(v) for v in shared.values())


def test_ensemble_is_the_mean_of_scaled_logs() -> None:
    values = {"live_params": math.e**2, "naswot": 3.0, "synflow": 0.0}
    weights = {"live_params": 1.0, "naswot": 1.0}
    expected = (2 / zc.SCALES["live_params"] + 3 / zc.SCALES["naswot"]) / 2
    assert zc.ensemble(values, weights) == pytest.approx(expected)
    assert zc.ensemble(values, {"synflow": 1.0}) == -math.inf  # nothing flows: the worst


def test_evaluator_scores_nb201_cells_deterministically(data_dir: Path) -> None:
    evaluator = ZeroCostEvaluator("nb201", "ensemble", batch_size=8, data_dir=data_dir, download=False)
    first = evaluator.evaluate(CONV, seed=3)
    assert first.status == "ok"
    assert set(first.metrics) == set(evaluator.metric_names)
    assert first.metrics == evaluator.evaluate(CONV, seed=3).metrics  # same seed, same bits
    assert first.metrics != evaluator.evaluate(CONV, seed=4).metrics  # other weights
    cut = evaluator.evaluate(CUT, seed=3)
    assert cut.metrics["zero_cost"] == -math.inf and zero_cost_reward(cut) == WORST_REWARD
    assert zero_cost_reward(first) == first.metrics["zero_cost"] > WORST_REWARD
    assert first.num_params == zc.params(NB201Network(CONV, cells_per_stage=1))
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    evaluator.evaluate(CONV, seed=3)
    assert torch.rand(1) == before  # the caller's global generator is left alone


def test_fingerprint_keys_every_setting(data_dir: Path) -> None:
    base = ZeroCostEvaluator("nb201", "synflow", data_dir=data_dir)
    others = [
        ZeroCostEvaluator("nb201", "naswot", data_dir=data_dir),
        ZeroCostEvaluator("nb201", "synflow", batch_size=32, data_dir=data_dir),
        ZeroCostEvaluator("nb201", "synflow", batch_seed=1, data_dir=data_dir),
        ZeroCostEvaluator("nb201", "synflow", network=(16, 5), data_dir=data_dir),
        ZeroCostEvaluator("cnn", "synflow", data_dir=data_dir),
    ]
    assert len({base.fingerprint, *(e.fingerprint for e in others)}) == 1 + len(others)
    assert ZeroCostEvaluator("nb201", "synflow", device="cpu").fingerprint == base.fingerprint


def test_evaluator_scores_a_cnn_child(data_dir: Path) -> None:
    arch = CnnArchitecture.from_str("3x3:8 | 5x5:8 <0 | 3x3:16 <0,1")
    evaluator = ZeroCostEvaluator("cnn", "naswot", batch_size=16, data_dir=data_dir, download=False)
    result = evaluator.evaluate(arch, seed=0)
    assert result.status == "ok" and np.isfinite(result.metrics["zero_cost"])
    assert result.metrics["zero_cost"] == pytest.approx(result.metrics["zc_naswot"] / zc.SCALES["naswot"])


def test_evaluator_scores_a_ptb_cell(data_dir: Path) -> None:
    from nas_env.search_spaces.rnn_cell import RnnCellSearchSpace

    space = RnnCellSearchSpace()
    arch = space.decode(space.sample(np.random.default_rng(0)))
    evaluator = ZeroCostEvaluator(
        "ptb", "snip", batch_size=4, data_dir=data_dir, download=False, network=(16, 1)
    )
    result = evaluator.evaluate(arch, seed=0)
    assert result.status == "ok" and result.metrics["zc_snip"] > 0
    assert result.metrics["zero_cost"] == pytest.approx(
        math.log(result.metrics["zc_snip"]) / zc.SCALES["snip"]
    )
    assert result.metrics == evaluator.evaluate(arch, seed=0).metrics


def test_bad_arguments_name_the_allowed_values() -> None:
    with pytest.raises(
        ValueError, match=r"zero_cost='synflw' is not allowed.*'naswot'.*Did you mean 'synflow'"
    ):
        ZeroCostEvaluator("nb201", "synflw")
    with pytest.raises(ValueError, match=r"space='nb202'.*\['cnn', 'nb201', 'ptb'\]"):
        ZeroCostEvaluator("nb202", "synflow")
    with pytest.raises(ValueError, match=r"ptb space.*'synflow'.*\['params', 'snip', 'grad_norm'\]"):
        ZeroCostEvaluator("ptb", "synflow")
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCostEvaluator("nb201", "synflow", batch_size=1)
    with pytest.raises(ValueError, match="zero_cost='flop'"):
        zc.score("flop", tiny_conv(), torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))


@pytest.mark.gpu
def test_scores_on_cuda_match_cpu() -> None:
    torch.manual_seed(0)
    model = NB201Network(CONV, channels=8, cells_per_stage=1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    cpu = zc.measure(list(zc.SCORES), model, x, y)
    gpu = zc.measure(list(zc.SCORES), model.cuda(), x.cuda(), y.cuda())
    for name in zc.SCORES:
        assert gpu[name] == pytest.approx(cpu[name], rel=1e-3), name


def run_episode(env: gym.Env, seed: int) -> tuple[float, dict]:
    """One episode of uniformly random valid actions."""
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return float(reward), info


@pytest.mark.parametrize(
    ("env_id", "kwargs", "member"),
    [
        ("NAS-Bench-201-v0", {}, "zc_jacob_cov"),
        ("NAS-CIFAR10-v0", {"num_layers": 3, "zero_cost": "live_params"}, "zc_live_params"),
        ("NAS-PTB-v0", {"base": 2, "zero_cost": "snip"}, "zc_snip"),
    ],
)
def test_zero_cost_reward_mode_through_gym_make(
    env_id: str, kwargs: dict, member: str, data_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "results.sqlite"
    env = gym.make(env_id, fidelity="zero_cost", cache_path=str(cache), device="cpu", **kwargs)
    reward, info = run_episode(env, seed=0)
    assert info["eval_status"] == "ok" and not info["cached"]
    assert reward == info["zero_cost"] and math.isfinite(reward) and member in info
    again, info_again = run_episode(env, seed=0)  # same seed, same child: served by the store
    assert info_again["cached"] and again == reward and info_again["arch"] == info["arch"]
    fresh = gym.make(env_id, fidelity="zero_cost", cache_path=str(cache), device="cpu", **kwargs)
    assert run_episode(fresh, seed=0)[1]["cached"]  # the store outlives the env
    evaluator = env.unwrapped.evaluation.evaluator
    assert isinstance(evaluator, ZeroCostEvaluator)


def test_zero_cost_mode_bad_arguments_are_one_line_errors(data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"zero_cost='synflow' only applies with fidelity='zero_cost'"):
        gym.make("NAS-Bench-201-v0", zero_cost="synflow")
    with pytest.raises(ValueError, match=r"zero_cost='synflw'.*Did you mean 'synflow'"):
        gym.make("NAS-CIFAR10-v0", fidelity="zero_cost", zero_cost="synflw")
    with pytest.raises(ValueError, match=r"ptb space.*\['params', 'snip', 'grad_norm'\]"):
        gym.make("NAS-PTB-v0", fidelity="zero_cost", zero_cost="naswot")
    with pytest.raises(ValueError, match="test_images"):
        gym.make("NAS-Bench-201-v0", fidelity="zero_cost", test_images=100)


def test_zero_cost_first_rung_of_successive_halving(data_dir: Path) -> None:
    from agents.base import make_agent

    env = gym.make("NAS-Bench-201-v0", fidelity="zero_cost", zero_cost="live_params", device="cpu")
    agent = make_agent("halving", env, seed=0, rungs=("cifar10_valid_acc_12ep",), base="random")
    history = agent.search(12)
    rung0 = [e for e in history if e.info.get("rung", 0) == 0]
    promoted = [e for e in history if e.info.get("rung", 0) == 1]
    assert rung0 and promoted
    assert all("zero_cost" in e.info for e in rung0)
    assert all("test_accuracy" in e.info and 0 < e.reward <= 1 for e in promoted)  # the table's accuracy
    best_zero_cost = {e.arch for e in sorted(rung0, key=lambda e: -e.reward)[: len(promoted)]}
    assert {e.arch for e in promoted} <= {e.arch for e in rung0}
    assert {e.arch for e in promoted} & best_zero_cost


def table_env() -> gym.Env:
    return gym.make("NAS-Bench-201-v0")  # the real table under $NAS_ENV_DATA


def test_screen_sends_the_best_screened_proposal_to_the_env(data_dir: Path, tmp_path: Path) -> None:
    from agents.base import AGENT_NAMES, make_agent
    from agents.screen import ZeroCostScreen

    assert {"screened_local_search", "screened_random", "screened_evolution"} <= set(AGENT_NAMES)
    cache = str(tmp_path / "zc.sqlite")
    screened = make_agent("screened_random", table_env(), seed=0, screen_candidates=8, screen_cache=cache)
    plain = make_agent("random", table_env(), seed=0)
    screened_runs, plain_runs = screened.search(12), plain.search(12)
    screen = ZeroCostScreen(screened.env.unwrapped.space, "live_params", cache)
    score = lambda arch: screen.score(screen.space.encode(screen.space.parse(arch)))  # noqa: E731
    # every evaluated cell beat the 7 others it was drawn with: far above random cells on average
    assert np.mean([score(e.arch) for e in screened_runs]) > np.mean([score(e.arch) for e in plain_runs])
    assert min(score(e.arch) for e in screened_runs) > -math.inf  # never a cell whose output is cut
    # the plain run (same seed, same stream) drew the screened run's first candidates: all cached
    assert screen.computed == 0 and 12 < len(screened.screen.memo) <= 12 * 8


def test_screened_local_search_resumes_exactly(data_dir: Path, tmp_path: Path) -> None:
    from agents.base import make_agent

    cache = str(tmp_path / "zc.sqlite")
    straight = make_agent(
        "screened_local_search", table_env(), seed=3, screen_candidates=4, screen_cache=cache
    )
    expected = [e.arch for e in straight.search(10)]
    first = make_agent("screened_local_search", table_env(), seed=3, screen_candidates=4, screen_cache=cache)
    first.search(6)
    first.save(tmp_path / "ckpt.pt")
    resumed = make_agent(
        "screened_local_search", table_env(), seed=3, screen_candidates=4, screen_cache=cache
    )
    resumed.load(tmp_path / "ckpt.pt")
    assert [e.arch for e in resumed.search(10)] == expected
    assert resumed.screen.computed == 0  # every score came from the shared cache
    assert resumed.config_dict()["base_config"]["initial_random"] == 5


def test_a_zero_cost_start_is_the_climbed_optimum_then_steepest_ascent(
    data_dir: Path, tmp_path: Path
) -> None:
    """local_search(start_score=...): the first cell is a local optimum of the score reached from a
    random cell (on NB201, live_params's climb ends at the all-convolution cell, its top of the
    space, from every seed); best improvement then evaluates that cell's whole neighbourhood before
    it moves, and moves to the best neighbour."""
    from agents.base import make_agent
    from agents.local_search import neighbours

    cache = str(tmp_path / "zc.sqlite")
    settings = {"start_score": "live_params", "screen_cache": cache, "initial_random": 1, "model_samples": 1}
    all_conv = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    for seed in (0, 1):
        agent = make_agent("local_search", table_env(), seed=seed, improvement="best", **settings)
        history = agent.search(1 + 24 + 3)
        space, schedule = agent.screen.space, agent.schedule
        tokens = [tuple(space.encode(space.parse(e.arch))) for e in history]
        start = tokens[0]
        assert history[0].arch == all_conv
        assert all(agent.screen.score(n) < agent.screen.score(start) for n in neighbours(start, schedule))
        assert set(tokens[1:25]) == set(neighbours(start, schedule))  # the whole neighbourhood first
        best = max(history[:25], key=lambda e: e.reward)
        assert best.arch != all_conv  # on the real table a neighbour beats the start (94.36 vs 93.76)
        best_tokens = tuple(space.encode(space.parse(best.arch)))
        assert all(t in neighbours(best_tokens, schedule) for t in tokens[25:])  # then climbs from the best
    first = make_agent("local_search", table_env(), seed=0, **settings)  # first improvement: moves at once
    history = first.search(26)
    tokens = [tuple(space.encode(space.parse(e.arch))) for e in history]
    better = next(i for i in range(1, 25) if history[i].reward > history[0].reward)
    assert tokens[better + 1] in neighbours(tokens[better], first.schedule)


def test_screen_bad_settings_are_one_line_errors(data_dir: Path) -> None:
    from agents.base import make_agent

    with pytest.raises(ValueError, match=r"base='reinforce'.*\['local_search', 'random', 'evolution'\]"):
        make_agent("screened_local_search", table_env(), base="reinforce")
    with pytest.raises(ValueError, match=r"zero_cost='synflw'.*Did you mean 'synflow'"):
        make_agent("screened_random", table_env(), screen_score="synflw")
    with pytest.raises(ValueError, match="screen_candidates=0"):
        make_agent("screened_evolution", table_env(), screen_candidates=0)
    with pytest.raises(ValueError, match="screen_candidats"):
        make_agent("screened_random", table_env(), screen_candidats=4)
    with pytest.raises(ValueError, match=r"zero_cost='synflw'.*Did you mean 'synflow'"):
        make_agent("local_search", table_env(), start_score="synflw")


def test_bench_zero_cost_prints_taus_and_resumes_from_its_store(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark("bench_zero_cost")
    argv = [
        "--cells",
        "8",
        "--scores",
        "params,live_params",
        "--time-cells",
        "1",
        "--store",
        str(tmp_path / "s.sqlite"),
    ]
    bench.main(argv)
    out = capsys.readouterr().out
    assert "live_params" in out and "8 cells drawn uniformly" in out and "0/8" not in out
    rows = ResultsStore(str(tmp_path / "s.sqlite")).rows()
    assert len(rows) == 8
    bench.main(argv)  # everything is in the store: nothing scored again
    assert (
        "scored (" not in capsys.readouterr().out
        and len(ResultsStore(str(tmp_path / "s.sqlite")).rows()) == 8
    )
    assert list(bench.rankdata([3.0, 1.0, 1.0])) == [3.0, 1.5, 1.5]  # ties share their average rank
