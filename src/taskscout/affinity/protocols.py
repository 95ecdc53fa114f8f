"""Evaluation protocols for learned scorers that never leak the held-out target.

* **leave-one-target-out**: for each task t, test = the gold pairs with target t; train = the
  gold pairs that involve t neither as target nor as source.
* **leave-one-family-out**: for each family F (from the task specs in the store, or a given
  mapping), test = the pairs whose target is in F; train = the pairs with no task of F.

Both assert the no-leak property on every split. :func:`cross_validate` fits one ensemble per
split and returns long-form scores ``target, source, predictor, score, std`` (score = predicted
gain in metric points) that :func:`taskscout.evaluation.longform.evaluate_long` scores beside
the similarity predictors and random.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import pandas as pd

from taskscout.affinity.data import AffinityDataError, EmbeddingSet, check_gold, sample_pairs
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.data import load_catalog
from taskscout.predictors import get_predictor
from taskscout.util import make_progress

PROTOCOLS = ("leave-one-target-out", "leave-one-family-out")


@dataclass
class Split:
    """One fold: ``held_out`` tasks, their test pairs and the leak-free training pairs."""

    name: str
    held_out: frozenset[str]
    train: pd.DataFrame
    test: pd.DataFrame


def assert_no_leak(split: Split) -> None:
    """Fail if a training pair involves a held-out task (as target or source) or if a test
    pair's target is not held out."""
    bad = split.train["target"].isin(split.held_out) | split.train["source"].isin(split.held_out)
    if bad.any():
        raise AssertionError(
            f"split {split.name}: {int(bad.sum())} training pair(s) involve held-out task(s)"
        )
    if not split.test["target"].isin(split.held_out).all():
        raise AssertionError(f"split {split.name}: a test pair's target is not held out")


def _split(name: str, held: set[str], gold: pd.DataFrame) -> Split:
    involved = gold["target"].isin(held) | gold["source"].isin(held)
    split = Split(
        name,
        frozenset(held),
        gold[~involved].reset_index(drop=True),
        gold[gold["target"].isin(held)].reset_index(drop=True),
    )
    assert_no_leak(split)
    return split


def leave_one_target_out(gold: pd.DataFrame) -> Iterator[Split]:
    """One split per gold target (sorted by name); targets without test pairs are skipped."""
    gold = check_gold(gold)
    for target in sorted(set(gold["target"])):
        yield _split(target, {target}, gold)


def leave_one_family_out(gold: pd.DataFrame, families: Mapping[str, str]) -> Iterator[Split]:
    """One split per family that holds a gold target; ``families`` maps task -> family (every
    gold task needs one: :class:`AffinityDataError` lists those without)."""
    gold = check_gold(gold)
    tasks = set(gold["target"]) | set(gold["source"])
    missing = sorted(t for t in tasks if not families.get(t))
    if missing:
        raise AffinityDataError(
            f"no family known for task(s) {missing}; leave-one-family-out needs the family of "
            "every task (from the task specs in the store or the catalog)"
        )
    for family in sorted({families[t] for t in set(gold["target"])}):
        held = {t for t in tasks if families[t] == family}
        yield _split(f"family:{family}", held, gold)


def task_families(pool, tasks, data_dir=None) -> dict[str, str]:
    """task -> family from the specs stored with the pool's runs, then the catalog of
    ``data_dir`` (or the pool's); tasks with neither are left out."""
    out: dict[str, str] = {}
    for t in tasks:
        info = pool.task_info(t) or {}
        family = (info.get("spec") or {}).get("family")
        if family:
            out[t] = family
    rest = [t for t in tasks if t not in out]
    if rest:
        try:
            catalog = load_catalog(data_dir if data_dir is not None else pool.data_dir)
        except Exception:  # noqa: BLE001 - no catalog: the caller reports missing families
            catalog = {}
        for t in rest:
            if t in catalog and getattr(catalog[t], "family", None):
                out[t] = catalog[t].family
    return out


def splits_for(
    protocol: str, gold: pd.DataFrame, families: Mapping[str, str] | None = None
) -> list[Split]:
    """The splits of ``protocol`` (one of :data:`PROTOCOLS`) over ``gold``; the family
    protocol needs ``families`` (task -> family). ``ValueError`` for an unknown protocol."""
    if protocol == "leave-one-target-out":
        return list(leave_one_target_out(gold))
    if protocol == "leave-one-family-out":
        if families is None:
            raise ValueError("leave-one-family-out needs task families")
        return list(leave_one_family_out(gold, families))
    raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")


def cross_validate(
    gold: pd.DataFrame,
    emb: EmbeddingSet,
    config: AffinityConfig | None = None,
    *,
    protocol: str = "leave-one-target-out",
    families: Mapping[str, str] | None = None,
    pairs: int | float | None = None,
    predictor: str = "affinity",
    backbone_location: str | None = None,
    progress: bool = True,
    fold_info: list | None = None,
) -> pd.DataFrame:
    """Fit on each split's training pairs, predict its test pairs.

    ``fold_info``: if a list is given, one dict per fitted split is appended to it (split name,
    training pairs, chosen learning rate, fit seconds).

    ``pairs``: how many training pairs to sample per split (seeded by ``config.seed``): an int
    M (capped at what the split has), a fraction in (0, 1] of the split's pairs, or None = all.
    Returns ``target, source, predictor, score, std`` (metric points), one row per gold pair
    whose target has a split with >= 1 training pair.
    """
    config = config or AffinityConfig()
    gold = check_gold(gold, emb.tasks)
    rows = []
    splits = splits_for(protocol, gold, families)
    with make_progress(progress, extra=False) as bar:
        task = bar.add_task(f"{protocol} ({predictor})", total=len(splits))
        for split in splits:
            train = split.train
            if len(train) < 2 or train["target"].nunique() < 2:
                bar.update(task, advance=1)
                continue
            if pairs is not None:
                m = (
                    round(pairs * len(train))
                    if isinstance(pairs, float)
                    else min(pairs, len(train))
                )
                train = sample_pairs(train, max(2, m), seed=config.seed)
            fold_config = replace(config)
            if train["target"].nunique() < 2:
                fold_config.lr = fold_config.lr or (fold_config.resolved().lr_grid[0])
            model = fit_affinity(
                train, emb, fold_config, backbone_location=backbone_location, progress=False
            )
            if fold_info is not None:
                fold_info.append(
                    {
                        "split": split.name,
                        "n_train": len(train),
                        "lr": model.info.lr,
                        "fit_seconds": model.info.fit_seconds,
                    }
                )
            test = split.test
            mean, std = model.predict(test["target"].tolist(), test["source"].tolist(), emb)
            rows.append(
                pd.DataFrame(
                    {
                        "target": test["target"].to_numpy(),
                        "source": test["source"].to_numpy(),
                        "predictor": predictor,
                        "score": mean,
                        "std": std,
                    }
                )
            )
            bar.update(task, advance=1)
    if not rows:
        raise AffinityDataError(f"{protocol}: no split had training pairs")
    return pd.concat(rows, ignore_index=True)


def similarity_scores(
    pool, gold: pd.DataFrame, predictors: list[str], *, progress: bool = False
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long-form scores of untrained predictors on exactly the gold pairs (per target, its gold
    sources). Predictors the pool cannot serve (e.g. no runs of their method) are skipped; the
    second value maps each to its reason."""
    gold = check_gold(gold)
    frames, skipped = [], {}
    with make_progress(progress, extra=False) as bar:
        task = bar.add_task("similarity predictors", total=len(predictors))
        for name in predictors:
            rows = []
            try:
                scorer = get_predictor(name)
                for target, group in gold.groupby("target", sort=True):
                    names = group["source"].tolist()
                    scored = scorer.score(target, names, pool)
                    rows += [(target, s, name, float(scored[s])) for s in names]
                frames.append(
                    pd.DataFrame(rows, columns=["target", "source", "predictor", "score"])
                )
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                skipped[name] = f"{type(exc).__name__}: {exc}"
            bar.update(task, advance=1)
    empty = pd.DataFrame(columns=["target", "source", "predictor", "score"])
    return (pd.concat(frames, ignore_index=True) if frames else empty), skipped


def source_prior_scores(
    gold: pd.DataFrame,
    *,
    protocol: str = "leave-one-target-out",
    families: Mapping[str, str] | None = None,
    predictor: str = "source-prior",
) -> pd.DataFrame:
    """A learned baseline without embeddings: score(s, t) = the mean training gain of source s
    (over the split's training pairs; 0 = no information for a source without training pairs).
    It tells how much of a scorer's skill is "some sources help most targets". Same splits and
    output columns as :func:`cross_validate` (``std`` = NaN)."""
    gold = check_gold(gold)
    rows = []
    for split in splits_for(protocol, gold, families):
        prior = split.train.groupby("source")["gain"].mean()
        test = split.test
        rows.append(
            pd.DataFrame(
                {
                    "target": test["target"].to_numpy(),
                    "source": test["source"].to_numpy(),
                    "predictor": predictor,
                    "score": test["source"].map(prior).fillna(0.0).to_numpy(),
                    "std": float("nan"),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
