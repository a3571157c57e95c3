"""Independent search runs, side by side in spawned one-thread processes, with one progress bar.

``nas-benchmark`` (policies x seeds on a table) and ``benchmarks/bench_search.py`` (policies x seeds
on a measured clock) both run many searches that share nothing but a results store: each worker
process runs one job at a time and sends its progress through a queue to the parent's bar.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from tqdm import tqdm

from nas_env.backends import limit_threads

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")
Progress = Callable[[float], object]
"""Called with each increment of a run's progress (evaluations, or seconds of its clock)."""

_PROGRESS: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _PROGRESS
    _PROGRESS = progress_queue
    limit_threads(1)


def _call(run: Callable[[Any, Progress], Any], job: Any) -> Any:
    return run(job, _PROGRESS.put)


def _drain(progress_queue: Any, bar: tqdm) -> None:
    while True:
        try:
            bar.update(progress_queue.get_nowait())
        except queue.Empty:
            return


def run_jobs(
    run: Callable[[JobT, Progress], ResultT],
    jobs: Sequence[JobT],
    workers: int,
    bar: tqdm,
    on_result: Callable[[ResultT], object] | None = None,
) -> list[ResultT]:
    """``run(job, progress)`` for every job, ``workers`` at a time (in this process for one worker).

    Args:
        run: A module-level function (spawned workers import it by name).
        jobs: The runs, in the order of the returned results.
        workers: Processes side by side, one torch thread each.
        bar: Receives every run's progress increments.
        on_result: Called with each result as it finishes (for example to print a line under the bar).

    Raises:
        Exception: The first failed run's own error; runs not started yet are cancelled, those in
            flight finish first (their evaluations are stored).
    """
    if workers == 1:
        results = []
        for job in jobs:
            results.append(run(job, bar.update))
            if on_result is not None:
                on_result(results[-1])
        return results
    ctx = mp.get_context("spawn")  # no fork after torch started its thread pools
    progress_queue = ctx.Queue()
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(progress_queue,)
    ) as pool:
        futures: list[Future[ResultT]] = [pool.submit(_call, run, job) for job in jobs]
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, bar)
                for future in finished:
                    result = future.result()  # raises the run's own error
                    if on_result is not None:
                        on_result(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        _drain(progress_queue, bar)
        return [future.result() for future in futures]
