"""Adaptive seeds for measured transfers: racing (successive elimination) per target.

Every pair (source s, target t) starts with the first ``start_seeds`` seeds of an ordered seed
list; pairs of one target share seeds, so a pair measured with n seeds used ``seeds[:n]``.
Each round, per target still open, the per-seed gains are compared with
:func:`taskscout.transfer.gains.separation` (paired t interval of gain(best) - gain(s) over
common seeds, two-sided ``level``): the *contenders* are the sources that cannot be told apart
from the current best (the best included). Then

* one contender (the best alone): the target is **separated** and closes;
* otherwise every contender with fewer than ``max_seeds`` seeds gets the next seed (the
  best too, so that comparisons stay paired); when no contender other than the best can get
  one, the target closes with its **seed budget spent**;
* before a round runs, the whole design's cost (transfers + distinct tune runs, see
  :func:`design_cost`) is checked against ``max_runs``; a round that would exceed it is not
  run and every open target closes with the **run budget spent**.

The decisions (:func:`race_step`) and the loop (:func:`race`) are pure functions of the
per-seed results: :func:`race` calls a ``measure`` callable for the runs each round needs.
:func:`run_adaptive` is the driver whose ``measure`` trains them through
:func:`taskscout.transfer.scheduler.run_matrix`, which reuses whatever the store holds, so an
interrupted race re-run with the same arguments replays the same decisions from the stored
results and continues where it stopped.

Compute saved: a race that ends with at most n* seeds on any pair of target t reached its
decision with fewer runs than the fixed design measuring every pair of t with n* seeds (which
supports at least the same comparisons); :attr:`RaceResult.fixed` is that design's cost and
:attr:`RaceResult.fixed_max` the cost of ``max_seeds`` seeds everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from taskscout.store import RunStore
from taskscout.transfer.executors import InProcessExecutor
from taskscout.transfer.gains import DEFAULT_LEVEL, per_seed_gains, separation
from taskscout.transfer.scheduler import run_matrix
from taskscout.tuning.config import TuneConfig, checkpoint_kind

#: (target, source, seed): one transfer run a race asks for.
Request = tuple[str, str, int]


@dataclass(frozen=True)
class StepDecision:
    """One target's decision in one round. ``contenders``: sources tied with the best
    (best first); ``grow``: sources that get their next seed; ``reason``: ``separated`` |
    ``seed budget spent`` | ``continue`` | ``no results``."""

    best: str | None
    contenders: tuple[str, ...]
    grow: tuple[str, ...]
    reason: str

    @property
    def closed(self) -> bool:
        return not self.grow


@dataclass
class TargetOutcome:
    """How the race ended for one target: the best source, the sources tied with it,
    whether it was separated, why the race stopped, and seeds used per source."""

    target: str
    best: str | None
    contenders: list[str]
    separated: bool
    reason: str
    seeds: dict[str, int]
    table: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


@dataclass
class RaceResult:
    """A finished race: outcomes per target, the design (seeds per pair), the per-seed rows it
    rests on, rounds run, the ordered seeds a pair could use, and the cost of the race vs
    fixed-seed designs (each a dict ``transfers, tunes, total``)."""

    outcomes: dict[str, TargetOutcome]
    design: dict[tuple[str, str], int]
    per_seed: pd.DataFrame
    rounds: int
    runs: dict
    fixed: dict
    fixed_max: dict
    seeds: list[int] = field(default_factory=list)

    @property
    def saved(self) -> float:
        """Share of the same-decision fixed design's runs the race did not need (0..1)."""
        return 1.0 - self.runs["total"] / self.fixed["total"] if self.fixed["total"] else 0.0


def design_cost(design: dict[tuple[str, str], int], seeds: list[int]) -> dict:
    """Runs a design needs: ``transfers`` = sum of seeds per pair; ``tunes`` = distinct
    (task, seed) tune runs (each source and each target's no-transfer baseline per seed it is
    used with; a task that is both shares one run per seed, as the matrix does)."""
    tunes: set[tuple[str, int]] = set()
    for (target, source), n in design.items():
        for seed in seeds[:n]:
            tunes.add((source, seed))
            tunes.add((target, seed))
    transfers = sum(design.values())
    return {"transfers": transfers, "tunes": len(tunes), "total": transfers + len(tunes)}


def restrict(per_seed: pd.DataFrame, design: dict[tuple[str, str], int], seeds) -> pd.DataFrame:
    """The per-seed rows (``target, source, seed, ...``) the design covers: pair (t, s) with
    n seeds keeps the rows of ``seeds[:n]``; duplicates of a (target, source, seed) are
    dropped (first kept)."""
    if per_seed.empty:
        return per_seed
    rank = {s: i for i, s in enumerate(seeds)}
    keep = [
        (t, s) in design and sd in rank and rank[sd] < design[(t, s)]
        for t, s, sd in zip(per_seed["target"], per_seed["source"], per_seed["seed"], strict=True)
    ]
    out = per_seed[keep].drop_duplicates(["target", "source", "seed"])
    return out.reset_index(drop=True)


def race_step(
    target_seeds: pd.DataFrame,
    n_seeds: dict[str, int],
    max_seeds: int,
    level: float = DEFAULT_LEVEL,
) -> StepDecision:
    """The decision for one target from its per-seed rows (``source, seed, gain``, already
    restricted to the design) and each source's assigned seed count (see the module
    docstring). Sources without any result cannot be contenders."""
    sep = separation(target_seeds, level)
    if sep.empty:
        return StepDecision(None, (), (), "no results")
    best = str(sep["source"].iloc[0])
    contenders = tuple(str(s) for s in sep.loc[sep["tied_best"], "source"])
    if len(contenders) == 1:
        return StepDecision(best, contenders, (), "separated")
    others = [s for s in contenders if s != best and n_seeds.get(s, 0) < max_seeds]
    if not others:
        return StepDecision(best, contenders, (), "seed budget spent")
    grow = tuple(s for s in contenders if n_seeds.get(s, 0) < max_seeds)
    return StepDecision(best, contenders, grow, "continue")


def race(
    pairs: dict[str, list[str]],
    measure: Callable[[list[Request]], pd.DataFrame],
    *,
    seeds: list[int],
    start_seeds: int = 2,
    max_runs: int | None = None,
    level: float = DEFAULT_LEVEL,
    on_round: Callable[[int, dict[str, StepDecision]], None] | None = None,
) -> RaceResult:
    """Race the sources of each target (``pairs``: target -> its candidate sources).

    ``measure(requests)`` runs (or finds) the requested transfers and returns per-seed rows
    (``target, source, seed, gain`` at least; failed runs simply absent); rows it returns
    beyond the design are ignored. ``seeds``: the ordered seeds a pair may use (``max_seeds``
    = its length). ``max_runs``: budget of training runs (transfers + tune runs, as
    :func:`design_cost` counts them); ValueError before any work if the first round alone
    exceeds it. ``on_round(round, decisions)`` is called after each round's decisions."""
    seeds = list(dict.fromkeys(seeds))
    if not pairs or any(not srcs for srcs in pairs.values()):
        raise ValueError("every target needs at least one candidate source")
    if any(t in srcs for t, srcs in pairs.items()):
        raise ValueError("a target cannot be its own source")
    if not 1 <= start_seeds <= len(seeds):
        raise ValueError(
            f"start_seeds must be in 1..{len(seeds)} (the seeds given), not {start_seeds}"
        )
    design = {(t, s): start_seeds for t, srcs in pairs.items() for s in dict.fromkeys(srcs)}
    first = design_cost(design, seeds)
    if max_runs is not None and first["total"] > max_runs:
        raise ValueError(
            f"max_runs {max_runs} is below the first round's {first['total']} runs "
            f"({first['transfers']} transfers + {first['tunes']} tune runs)"
        )
    rows = [measure(_requests(design, {}, seeds))]
    open_targets = list(pairs)
    reasons: dict[str, str] = {}
    rounds = 1
    while open_targets:
        frame = restrict(pd.concat(rows, ignore_index=True), design, seeds)
        decisions = {
            t: race_step(
                frame[frame["target"] == t],
                {s: design[(t, s)] for s in pairs[t]},
                len(seeds),
                level,
            )
            for t in open_targets
        }
        if on_round is not None:
            on_round(rounds, decisions)
        for t, d in decisions.items():
            if d.closed:
                reasons[t] = d.reason
        open_targets = [t for t in open_targets if not decisions[t].closed]
        if not open_targets:
            break
        proposal = dict(design)
        for t in open_targets:
            for s in decisions[t].grow:
                proposal[(t, s)] += 1
        if max_runs is not None and design_cost(proposal, seeds)["total"] > max_runs:
            for t in open_targets:
                reasons[t] = "run budget spent"
            break
        new = _requests(proposal, design, seeds)
        design = proposal
        rows.append(measure(new))
        rounds += 1
    frame = restrict(pd.concat(rows, ignore_index=True), design, seeds)
    outcomes = {}
    for t in pairs:
        sep = separation(frame[frame["target"] == t], level)
        contenders = [str(s) for s in sep.loc[sep["tied_best"], "source"]] if len(sep) else []
        outcomes[t] = TargetOutcome(
            target=t,
            best=str(sep["source"].iloc[0]) if len(sep) else None,
            contenders=contenders,
            separated=len(contenders) == 1,
            reason=reasons.get(t, "separated" if len(contenders) == 1 else "stopped"),
            seeds={s: design[(t, s)] for s in pairs[t]},
            table=sep,
        )
    n_star = {t: max(design[(t, s)] for s in pairs[t]) for t in pairs}
    fixed = {(t, s): n_star[t] for (t, s) in design}
    fixed_max = {(t, s): len(seeds) for (t, s) in design}
    return RaceResult(
        outcomes=outcomes,
        design=design,
        per_seed=frame,
        rounds=rounds,
        runs=design_cost(design, seeds),
        fixed=design_cost(fixed, seeds),
        fixed_max=design_cost(fixed_max, seeds),
        seeds=seeds,
    )


def _requests(design: dict, before: dict, seeds: list[int]) -> list[Request]:
    """The (target, source, seed) runs ``design`` has beyond ``before``."""
    out = []
    for (t, s), n in design.items():
        for seed in seeds[before.get((t, s), 0) : n]:
            out.append((t, s, seed))
    return out


def run_adaptive(
    db: RunStore,
    settings: TuneConfig,
    sources: list[str],
    targets: list[str],
    seeds: list[int],
    *,
    start_seeds: int = 2,
    max_runs: int | None = None,
    level: float = DEFAULT_LEVEL,
    executor=None,
    workers: int = 1,
    checkpoint: str = "best",
    device: str | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    keep_state: bool = False,
    progress: bool = True,
    on_round: Callable[[int, dict[str, StepDecision]], None] | None = None,
) -> tuple[RaceResult, dict[str, str]]:
    """Race every target's sources (``sources`` minus the target) with real training runs:
    :func:`race` whose ``measure`` runs the requested transfers (and the tune runs they need)
    through :func:`~taskscout.transfer.scheduler.run_matrix` on ``executor``, grouped into
    (sources x targets) blocks per seed, and reads the results back from ``db``. Returns the
    race result and the failed runs (label -> first error line)."""
    if not sources or not targets or not seeds:
        raise ValueError("need at least one source, one target and one seed")
    settings = settings.resolved(device)
    checkpoint = checkpoint_kind(checkpoint)
    executor = executor or InProcessExecutor()
    pairs = {t: [s for s in dict.fromkeys(sources) if s != t] for t in dict.fromkeys(targets)}
    empty = [t for t, srcs in pairs.items() if not srcs]
    if empty:
        raise ValueError(f"target(s) {empty} have no source other than themselves")
    failed: dict[str, str] = {}
    shash = settings.settings_hash()

    def measure(requests: list[Request]) -> pd.DataFrame:
        blocks: dict[tuple[int, tuple[str, ...]], list[str]] = {}
        wanted: dict[tuple[int, str], list[str]] = {}
        for t, s, seed in requests:
            wanted.setdefault((seed, t), []).append(s)
        for (seed, t), srcs in wanted.items():
            blocks.setdefault((seed, tuple(sorted(srcs))), []).append(t)
        for (seed, srcs), tgts in sorted(blocks.items()):
            summary = run_matrix(
                db,
                settings,
                list(srcs),
                tgts,
                [seed],
                executor=executor,
                workers=workers,
                checkpoint=checkpoint,
                device=device,
                threads=threads,
                retry_failed=retry_failed,
                keep_state=keep_state,
                progress=progress,
            )
            failed.update(summary.failed)
        frame, _ = per_seed_gains(
            db,
            method=settings.method,
            backbone=settings.backbone_id(),
            checkpoint=checkpoint,
            settings_hash=shash,
        )
        return frame

    result = race(
        pairs,
        measure,
        seeds=seeds,
        start_seeds=start_seeds,
        max_runs=max_runs,
        level=level,
        on_round=on_round,
    )
    return result, failed


__all__ = [
    "RaceResult",
    "StepDecision",
    "TargetOutcome",
    "design_cost",
    "race",
    "race_step",
    "restrict",
    "run_adaptive",
]
