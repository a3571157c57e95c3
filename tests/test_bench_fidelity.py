"""``benchmarks/bench_fidelity.py`` runs on tiny samples of both spaces, resumes from its store, and
rejects bad arguments in one line. Real CIFAR-10 (smoke preset), and the real NB201 table when present."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "benchmarks/bench_fidelity.py", "--threads", "1", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def figures(stdout: str) -> list[str]:
    """The printed figures: every line after the 'wall N s' line."""
    lines = stdout.splitlines()
    return lines[next(i for i, line in enumerate(lines) if ", wall " in line) + 1 :]


@pytest.mark.slow
def test_both_spaces_side_by_side_then_from_the_store(tmp_path: Path, data_dir: Path) -> None:
    store = tmp_path / "fid.sqlite"
    args = ("--presets", "smoke", "--children", "3", "--cells", "3", "--no-reference", "--store", str(store))
    first = bench(*args, "--workers", "2")  # trained in a 2-process pool, one thread each
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "2 workers x 1 threads" in out
    assert "CNN space: 3 random 6-layer children (CnnSearchSpace sample, seed 0)" in out
    assert re.search(r"^  smoke\s+tau s0-s1\s+-?\d\.\d{3}\s+s/child mean", out, re.M), out
    assert re.search(r"^NB201 trained mode: 3 cells drawn uniformly \(seed 0\)", out, re.M), out
    for score in ("ensemble", "live_params"):  # the untrained cells' zero-cost scores beside the presets
        assert re.search(rf"^  zero-cost {score}: tau\s+-?\d\.\d{{3}}\s+top half", out, re.M), out
    nb201 = (
        r"^  smoke\s+tau seed 0\s+-?\d\.\d{3}\s+tau seed 1\s+-?\d\.\d{3}\s+top half\s+-?\d\.\d{3}\s+tau s0-s1"
    )
    assert re.search(nb201, out, re.M), out
    with sqlite3.connect(store) as db:  # 3 children x 2 seeds + 3 cells x 2 seeds
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 12
    again = bench(*args)  # inline this time: the same store serves both
    assert again.returncode == 0 and "3 of 3 cached" in again.stdout and "  smoke " in again.stdout
    # the same taus and seconds, read from the store (the wall-clock per child only when trained)
    assert "wall/child" in out and "wall/child" not in again.stdout
    assert figures(again.stdout) == [re.sub(r"  wall/child .*", "", line) for line in figures(out)]
    with sqlite3.connect(store) as db:  # nothing trained twice
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 12


def test_a_preset_variant_is_its_own_row_and_cache_key(tmp_path: Path, data_dir: Path) -> None:
    """``smoke:fp32:train_images=64`` (a precision and a field) and ``smoke:epochs=2:batch_size=32``
    (any recipe field overridden): each trained and stored under its own recipe's fingerprint.

    fp32, not bf16: on a CPU without bf16 instructions bf16 is emulated and ten times slower."""
    from nas_env.evaluators.cifar import CifarTrainingEvaluator
    from nas_env.training.recipes import FIDELITIES

    store = tmp_path / "fid.sqlite"
    presets = "smoke:fp32:train_images=64,smoke:epochs=2:batch_size=32"
    args = ("--space", "cnn", "--presets", presets, "--children", "2", "--train-seeds", "1")
    done = bench(*args, "--no-reference", "--store", str(store))
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("smoke:fp32:train_images=64", "smoke:epochs=2:batch_size=32"):
        assert re.search(rf"^  {row}\s+tau s0-s1\s+nan\s+s/child mean", done.stdout, re.M), done.stdout
    variants = (
        FIDELITIES["smoke"].replace(precision="fp32", train_images=64),
        FIDELITIES["smoke"].replace(epochs=2, batch_size=32),
    )
    with sqlite3.connect(store) as db:
        keys = sorted(row[0] for row in db.execute("SELECT fingerprint FROM evaluations"))
    expected = [f"{CifarTrainingEvaluator(f, data_dir=data_dir).fingerprint}:s0" for f in variants]
    assert keys == sorted(expected * 2) and len(set(expected)) == 2


def test_nb201_cells_from_the_top_band_on_another_network(tmp_path: Path, data_dir: Path) -> None:
    """``--top 0.01`` draws every cell from the table's best 1% (by 200-epoch test accuracy), and
    ``smoke:channels=4:cells_per_stage=2`` trains them in that network, under its own cache key."""
    from nas_env.evaluators.nb201_training import NB201TrainingEvaluator
    from nas_env.evaluators.tabular import load_nb201_table
    from nas_env.search_spaces.nb201 import NB201Architecture

    table = load_nb201_table(data_dir / "nb201" / "nb201_cifar10.csv")
    truth = table.column("cifar10_test_acc_200ep")
    best = set(np.argsort(-truth, kind="stable")[:157].tolist())  # ceil(1% of 15,625)
    store = tmp_path / "fid.sqlite"
    preset = "smoke:channels=4:cells_per_stage=2"
    args = ("--space", "nb201", "--presets", preset, "--cells", "3", "--top", "0.01", "--store", str(store))
    done = bench(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    floor = truth[list(best)].min()
    band = rf"3 cells drawn uniformly of the best 1% \(157 cells, cifar10_test_acc_200ep >= {floor:.2f}\)"
    assert re.search(band, done.stdout), done.stdout
    row = rf"^  {preset}\s+tau seed 0 .* seeds' mean\s+-?\d\.\d{{3}} .*network C=4 N=2"
    assert re.search(row, done.stdout, re.M), done.stdout
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT arch, fingerprint FROM evaluations").fetchall()
    evaluator = NB201TrainingEvaluator("smoke", data_dir=data_dir, channels=4, cells_per_stage=2)
    assert sorted(key for _, key in rows) == sorted(
        [f"{evaluator.fingerprint}:s0", f"{evaluator.fingerprint}:s1"] * 3
    )
    assert {NB201Architecture.from_str(arch).index for arch, _ in rows} <= best


def test_nb201_cells_from_a_file(tmp_path: Path, data_dir: Path) -> None:
    """``--archs FILE`` trains exactly the cells the file lists (comments and blank lines skipped)."""
    cells = (REPO / "benchmarks" / "nb201_edge03_pairs.txt").read_text().splitlines()[4:7]
    listing = tmp_path / "cells.txt"
    listing.write_text("# three cells\n\n" + "\n".join(cells) + "\n")
    store = tmp_path / "fid.sqlite"
    args = ("--space", "nb201", "--presets", "smoke", "--archs", str(listing), "--train-seeds", "1")
    done = bench(*args, "--store", str(store))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"NB201 trained mode: the 3 cells of {listing};" in done.stdout
    with sqlite3.connect(store) as db:
        assert sorted(row[0] for row in db.execute("SELECT arch FROM evaluations")) == sorted(cells)


def test_bad_cell_files(tmp_path: Path) -> None:
    one, bad = tmp_path / "one.txt", tmp_path / "bad.txt"
    one.write_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    bad.write_text("# a comment\n|none~0|+|none~0|\n")
    for path, message in (
        (one, f"--archs {one}: Kendall's tau needs at least 2 cells"),
        (bad, f"--archs {bad} line 2: "),
        (tmp_path / "missing.txt", f"--archs {tmp_path / 'missing.txt'}: No such file or directory"),
    ):
        done = bench("--space", "nb201", "--archs", str(path), timeout=60)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = bench("--space", "nb201", "--archs", str(bad), "--top", "0.1", timeout=60)
    assert done.returncode == 2 and "--archs and --top exclude each other" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--presets", "fast"), "--presets: unknown preset 'fast'; choose from ['paper', 'proxy', 'smoke']"),
        (("--children", "1"), "Kendall's tau needs --children and --cells >= 2"),
        (("--reference-seeds", "0"), "--train-seeds and --reference-seeds >= 1"),
        (("--workers", "0"), "--workers must be >= 1, got 0"),
        (
            ("--presets", "proxy:fp16"),
            "unknown precision 'fp16' in 'proxy:fp16'; choose from ('fp32', 'bf16', 'auto')",
        ),
        (("--presets", "proxy:epoch=4"), "unknown field 'epoch' in 'proxy:epoch=4'; choose from ['augment',"),
        (
            ("--presets", "proxy:epochs=four"),
            "--presets: epochs='four' in 'proxy:epochs=four' is not of type int",
        ),
        (
            ("--presets", "proxy:resolution=24"),
            "Fidelity.resolution=24 is not allowed; expected one of [32, 16, 8]",
        ),
        (("--rnn-cells", "0"), "--rnn-cells must be >= 1 (the sample also holds 3 named cells), got 0"),
        (
            ("--space", "ptb", "--presets", "fast"),
            "unknown preset 'fast'; choose from ['paper', 'proxy', 'smoke']",
        ),
        (
            ("--space", "ptb", "--presets", "proxy:fp32"),
            "--presets: 'fp32' in 'proxy:fp32' is not FIELD=VALUE",
        ),
        (
            ("--space", "ptb", "--presets", "proxy:resolution=16"),
            "unknown field 'resolution' in 'proxy:resolution=16'; choose from ['adaptive_softmax',",
        ),
        (
            ("--space", "ptb", "--presets", "proxy:unigram_bias=maybe"),
            "--presets: unigram_bias='maybe' in 'proxy:unigram_bias=maybe' is not of type bool",
        ),
        (
            ("--space", "ptb", "--presets", "proxy:hidden_size=0"),
            "PtbFidelity.hidden_size=0 must be a positive",
        ),
        (("--space", "rnn"), "argument --space: invalid choice: 'rnn'"),
        (("--top", "0"), "--top must be in (0, 1] and hold at least --cells=24 cells, got 0.0"),
        (("--top", "0.001"), "--top must be in (0, 1] and hold at least --cells=24 cells, got 0.001"),
        (
            ("--space", "nb201", "--presets", "proxy:channels=x"),
            "--presets: 'channels=x' in 'proxy:channels=x' is not an integer",
        ),
        (("--space", "nb201", "--presets", "proxy:cells_per_stage=0"), "cells_per_stage=0 is out of range"),
    ],
)
def test_bad_arguments(args: tuple[str, ...], message: str) -> None:
    done = bench(*args, timeout=60)
    assert done.returncode == 2 and message in done.stderr


def test_ptb_space_side_by_side_then_from_the_store(tmp_path: Path) -> None:
    """``--space ptb`` on real Penn Treebank at the smoke preset (4k tokens): the LSTM, NASCell and
    tanh RNN plus 2 random base-8 cells, two seeds, tau and every cell's perplexity side by side;
    a rerun reads everything from the store."""
    store = tmp_path / "ptb.sqlite"
    args = (
        "--space",
        "ptb",
        "--presets",
        "smoke",
        "--rnn-cells",
        "2",
        "--no-reference",
        "--store",
        str(store),
    )
    first = bench(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert re.search(r"^PTB space: LSTM, NASCell, tanh RNN and 2 random base-8 cells", out, re.M), out
    assert re.search(r"^  smoke\s+tau s0-s1\s+-?\d\.\d{3}\s+s/child mean", out, re.M), out
    assert re.search(
        r"^    seed 1: LSTM \d+\.\d  NASCell \d+\.\d  tanh RNN \d+\.\d  median random", out, re.M
    )
    rows = re.findall(r"^  (LSTM|NASCell|tanh RNN|random \d)\s+(\d+\.\d)\s+(\d+\.\d)  (.+)$", out, re.M)
    assert [r[0] for r in rows] == ["LSTM", "NASCell", "tanh RNN", "random 0", "random 1"], out
    assert rows[0][3] == "lstm" and rows[2][3] == "add:identity add:identity / add:tanh"
    assert all(1 < float(ppl) < 10_000 * 3 for r in rows for ppl in r[1:3])  # trained a little from 10k
    with sqlite3.connect(store) as db:  # 5 cells x 2 seeds
        assert db.execute("SELECT COUNT(*) FROM evaluations WHERE status = 'ok'").fetchone()[0] == 10
    again = bench(*args)
    assert again.returncode == 0 and "5 of 5 cached" in again.stdout
    assert figures(again.stdout) == [re.sub(r"  wall/child .*", "", line) for line in figures(out)]


def test_ptb_diverged_cells_rank_last_and_are_not_retrained(tmp_path: Path) -> None:
    """A recipe whose children all blow up: each is stored as failed, printed as inf, tau is
    undefined (all tied), and a rerun trains nothing again."""
    store = tmp_path / "ptb.sqlite"
    diverging = "smoke:optimizer=sgd:lr=1e12:grad_clip=1e30:init_scale=2.0"
    args = ("--space", "ptb", "--presets", diverging, "--rnn-cells", "1", "--train-seeds", "1")
    done = bench(*args, "--no-reference", "--store", str(store))
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(rf"^  {re.escape(diverging)}\s+tau s0-s1\s+nan", done.stdout, re.M), done.stdout
    assert re.search(r"^  LSTM\s+inf  lstm$", done.stdout, re.M), done.stdout
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT status, COUNT(*) FROM evaluations").fetchall() == [("failed", 4)]
    again = bench(*args, "--no-reference", "--store", str(store))
    assert again.returncode == 0 and "4 of 4 cached" in again.stdout
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 4


def test_ptb_reference_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The reference path on tiny data: the long reference replaced by a 2-epoch smoke recipe, two
    reference seeds; each preset seed and the seeds' mean get a tau against it."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import _fidelity_ptb
    import bench_fidelity

    from nas_env.training.ptb import PTB_FIDELITIES

    monkeypatch.setattr(_fidelity_ptb, "PTB_REFERENCE", PTB_FIDELITIES["smoke"].replace(epochs=2))
    args = ["--space", "ptb", "--presets", "smoke", "--rnn-cells", "2", "--reference-seeds", "2"]
    bench_fidelity.main([*args, "--threads", "1", "--store", str(tmp_path / "ptb.sqlite")])
    out = capsys.readouterr().out
    assert re.search(
        r"^  reference\s+tau s0-s1\s+-?\d\.\d{3}\s+s/child.*geometric mean of 2 seeds", out, re.M
    )
    taus = r"tau s0-s1\s+-?\d\.\d{3}\s+seed 0 vs reference\s+-?\d\.\d{3}\s+seed 1 vs reference\s+-?\d\.\d{3}"
    assert re.search(rf"^  smoke\s+{taus}\s+mean vs reference\s+-?\d\.\d{{3}}", out, re.M), out
    assert re.search(r"^  cell\s+smoke s0\s+smoke s1\s+reference  architecture$", out, re.M), out


def test_the_ptb_reference_is_the_proxy_trained_longer(monkeypatch: pytest.MonkeyPatch) -> None:
    """What docs/ptb.md states of the reference: the proxy's model and optimiser, three times its
    training tokens, the whole validation split; nothing else differs."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from _fidelity_ptb import PTB_REFERENCE

    from nas_env.training.ptb import PTB_FIDELITIES, PTB_TRAIN_TOKENS

    proxy = PTB_FIDELITIES["proxy"]
    trained = {f: (f.train_tokens or PTB_TRAIN_TOKENS) * f.epochs for f in (proxy, PTB_REFERENCE)}
    assert trained[PTB_REFERENCE] >= 3 * trained[proxy] and PTB_REFERENCE.valid_tokens is None
    length = {"epochs": 1, "train_tokens": proxy.train_tokens, "valid_tokens": proxy.valid_tokens}
    assert PTB_REFERENCE.replace(**length) == proxy


def test_ptb_tau_against_the_reference_runs_a_seed_does_not_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """With the reference set to the preset itself, reference seed s *is* preset seed s, so the
    tau of each seed against the other seed's reference run must be the seed-to-seed tau."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import _fidelity_ptb
    import bench_fidelity

    from nas_env.training.ptb import PTB_FIDELITIES

    monkeypatch.setattr(_fidelity_ptb, "PTB_REFERENCE", PTB_FIDELITIES["smoke"])
    args = ["--space", "ptb", "--presets", "smoke", "--rnn-cells", "3", "--reference-seeds", "2"]
    bench_fidelity.main([*args, "--threads", "1", "--store", str(tmp_path / "ptb.sqlite")])
    out = capsys.readouterr().out
    seed_to_seed = re.search(r"^  smoke\s+tau s0-s1\s+(-?\d\.\d{3})", out, re.M)
    unshared = re.search(
        r"^    tau vs the other seeds' reference \(no shared start\): seed 0\s+(\S+)\s+seed 1\s+(\S+)$",
        out,
        re.M,
    )
    assert seed_to_seed and unshared, out
    assert unshared.group(1) == unshared.group(2) == seed_to_seed.group(1)
