"""The inputs of the pool report (:func:`taskscout.report.pool_report`) computed from a pool.

* the map: each task's TuPaTE update ``e - e0`` of ``map_method`` (the form that carries task
  identity on MiniLM, see DESIGN section 4; the raw vector when e0 cannot be rebuilt);
* with a gold: the ranking of ``target`` by the light affinity scorer fitted on every gold pair
  that does not involve the target (a predicted gain with a 90 % interval from its ensemble),
  and, for the predictor table, the same scorer leave-one-target-out over every gold target
  beside ``tupate-<map_method>-delta``, ``datasize``, ``source-prior`` and random;
* without a gold: the ranking by ``tupate-<map_method>-delta`` (a score, no interval) and a
  sentence for every section that needs measured gains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taskscout.affinity.data import EmbeddingSet
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.affinity.protocols import cross_validate, similarity_scores
from taskscout.embeddings.task_embedding import init_embedding
from taskscout.predictors import Pool, get_predictor
from taskscout.predictors.ranking import rank_sources
from taskscout.report import PoolReportInputs
from taskscout.studies.common import SCORE_COLUMNS, baseline_scores, families_of


def map_vectors(pool: Pool, method: str) -> tuple[dict[str, np.ndarray], str]:
    """task -> 1-D vector for the map, and what it is."""
    emb = pool.embeddings(method)
    out, delta = {}, True
    for task, e in emb.items():
        vec = e.tensor.float().reshape(-1) if e.tensor.dim() == 1 else e.tensor.float().mean(0)
        try:
            init = init_embedding(pool.run(task, method), pool.layer_reduce).float()
            init = init.reshape(-1) if init.dim() == 1 else init.mean(0)
            vec = vec - init
        except Exception:  # noqa: BLE001 - no rebuildable init: the raw vector, said below
            delta = False
        out[task] = vec.numpy()
    what = f"TuPaTE {method} updates (e - e0)" if delta else f"TuPaTE {method} vectors"
    return out, f"{what}, {pool.checkpoint} checkpoint"


def pool_report_inputs(
    pool: Pool,
    *,
    title: str,
    target: str | None = None,
    gold: pd.DataFrame | None = None,
    gold_description: str = "gold",
    measured: pd.DataFrame | None = None,
    measured_description: str = "measured on this pool",
    ranking: pd.DataFrame | None = None,
    ranking_predictor: str | None = None,
    map_method: str = "lora",
    affinity_method: str = "lora",
    ensemble: int = 3,
    lr: float | None = 1e-3,
    seed: int = 0,
    progress: bool = True,
    subtitle: str | None = None,
) -> PoolReportInputs:
    """Everything :func:`taskscout.report.pool_report` shows, from ``pool`` (read only:
    nothing is written to its store) and the optional ``gold`` / ``measured`` gains. A given
    ``ranking`` (e.g. from ``taskscout rank``) is shown as is, named ``ranking_predictor``.
    The light scorer uses ``ensemble`` members and learning rate ``lr`` (None: searched per
    fit, about 4x slower)."""
    tasks = pool.store.task_names(backbone=pool.backbone)
    notes = []
    inp = PoolReportInputs(
        title=title,
        subtitle=subtitle,
        target=target,
        gold=gold,
        gold_description=gold_description,
        measured=measured,
        measured_description=measured_description,
    )
    try:
        inp.vectors, inp.vector_description = map_vectors(pool, map_method)
    except Exception as exc:  # noqa: BLE001 - the map is left out with the reason
        notes.append(f"No task map: the pool has no {map_method} embeddings ({exc}).")
    inp.families = families_of(pool, tasks)
    if gold is not None:
        gold = gold[gold["target"].isin(tasks) & gold["source"].isin(tasks)].reset_index(drop=True)
        inp.gold = gold if not gold.empty else None
        if inp.gold is None:
            notes.append(f"The {gold_description} has no pair among the pool's tasks.")
    config = AffinityConfig(
        kind="light", method=affinity_method, ensemble=ensemble, seed=seed, lr=lr
    )
    aff_name = f"affinity-light-{affinity_method}"
    if ranking is not None:
        inp.ranking, inp.predictor = ranking, ranking_predictor
    elif target is not None and target in tasks:
        train = (
            None
            if inp.gold is None
            else inp.gold[(inp.gold["target"] != target) & (inp.gold["source"] != target)]
        )
        if train is not None and train["target"].nunique() >= 2:
            emb = EmbeddingSet.from_pool(pool, affinity_method, tasks)
            model = fit_affinity(train, emb, config, progress=False)
            sources = [s for s in tasks if s != target]
            mean, std = model.predict([target] * len(sources), sources, emb)
            table = pd.DataFrame({"source": sources, "score": mean, "std": std})
            summaries = pool.store.task_summaries()
            table["num_train"] = [(summaries.get(s) or {}).get("num_train") for s in sources]
            table["family"] = [inp.families.get(s) for s in sources]
            table = table.sort_values("score", ascending=False, kind="stable")
            table.insert(0, "rank", range(1, len(table) + 1))
            inp.ranking = table.reset_index(drop=True)
            inp.predictor = f"{aff_name} (fitted on the {len(train)} gold pairs without {target})"
        else:
            name = f"tupate-{map_method}-delta"
            inp.ranking = rank_sources(get_predictor(name), pool, target)
            inp.predictor = name
            notes.append(
                f"No gold to fit a scorer on, so the ranking is by {name}: a "
                "similarity score without an interval."
            )
    elif target is not None:
        notes.append(f"Target {target} has no run in the pool, so no ranking is shown.")
    if inp.gold is not None and inp.gold["target"].nunique() >= 3:
        emb = EmbeddingSet.from_pool(pool, affinity_method, tasks)
        loto = cross_validate(inp.gold, emb, config, predictor=aff_name, progress=progress)
        sim, skipped = similarity_scores(pool, inp.gold, [f"tupate-{map_method}-delta"])
        base, sk2 = baseline_scores(pool, inp.gold)
        for name, why in {**skipped, **sk2}.items():
            notes.append(f"skipped {name}: {why}")
        inp.scores = pd.concat([loto, sim, base], ignore_index=True)
        inp.scores = inp.scores[[*SCORE_COLUMNS, "std"]] if "std" in inp.scores else inp.scores
        inp.main_predictor = aff_name
    inp.notes = notes
    return inp
