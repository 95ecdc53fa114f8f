"""``taskscout affinity fit|evaluate``: learn a transfer-gain scorer and evaluate it without
leaking the target (registered as the ``affinity`` sub-app of the root app).

They default to ``--method prompt`` (the scorer of Feng 2023 reads prompt embeddings), unlike
tune / embed / rank (``lora``); the checkpoint default is the same (``early``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import typer

from taskscout.affinity.data import EmbeddingSet, check_gold, sample_pairs
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.affinity.io import save_model
from taskscout.affinity.protocols import cross_validate, similarity_scores, task_families
from taskscout.cli.common import (
    BackboneOpt,
    CheckpointOpt,
    DataDirOpt,
    JsonOpt,
    Method,
    NoProgressOpt,
    ThreadsOpt,
    err,
    fail,
    flag,
    guard,
    open_store,
    out,
    output_file,
    output_folder,
    table,
)
from taskscout.evaluation.external import load_taskweb_gold
from taskscout.evaluation.files import read_gold_csv
from taskscout.evaluation.longform import evaluate_long
from taskscout.evaluation.report import parse_ks, summary_records, summary_table
from taskscout.predictors import Pool
from taskscout.tuning.config import checkpoint_kind
from taskscout.util import set_torch_threads

app = typer.Typer(
    no_args_is_help=True,
    help="Learned affinity scorers: fit on measured or published gains, evaluate "
    "leave-one-target-out / leave-one-family-out.",
)

PoolOpt = Annotated[Path, typer.Option("--pool", "--store", help="Run store with the embeddings.")]
GoldOpt = Annotated[
    Path,
    typer.Option(
        "--gold",
        help="Gold gains: long form target,source,gain (metric points) or a wide matrix "
        "(see `taskscout evaluate`); with --taskweb-setting, TaskWeb's pairs.csv.",
    ),
]
TaskwebOpt = Annotated[
    str | None,
    typer.Option(
        "--taskweb-setting",
        help="Read --gold as TaskWeb's pairs.csv with this setting, e.g. 'ALL(avg)' "
        "(gain = 100 x avg_pct_change).",
    ),
]
KindOpt = Annotated[
    str,
    typer.Option(
        "--kind",
        help="light (MLP over vector features; the default: better and ~50x cheaper on the TaskWeb "
        "benchmark) | backbone (Feng 2023 transformer over prompt matrices)",
    ),
]
MethodOpt = Annotated[
    Method,
    typer.Option(
        "--method",
        "-m",
        help="Embedding method (default prompt, the scorer's; backbone kind: prompt only).",
    ),
]
PairsOpt = Annotated[
    int | None, typer.Option("--pairs", help="Training pairs M, sampled (seeded); default all.")
]
BetaOpt = Annotated[float, typer.Option("--beta", help="Smooth-L1 threshold (z units).")]
EnsembleOpt = Annotated[int, typer.Option("--ensemble", help="Scorers with different seeds.")]
RestrictOpt = Annotated[
    bool,
    flag(
        "--restrict/--no-restrict",
        help="Drop gold pairs whose tasks have no embedding in the pool (else an error).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of pair sampling and init.")]
LrOpt = Annotated[
    float | None, typer.Option("--lr", help="Fixed learning rate (default: searched on a grid).")
]
EpochsOpt = Annotated[
    int | None, typer.Option("--epochs", min=1, help="Default: 20 backbone, 100 light.")
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        envvar="TASKSCOUT_DEVICE",
        help="cpu (the only device affinity scorers train on for now).",
    ),
]


def _check_device(device: str | None) -> None:
    if device not in (None, "cpu"):
        fail(f"--device {device}: affinity scorers train on the CPU only for now (--device cpu)")


def _prepare(pool_dir, gold_path, taskweb_setting, method, checkpoint, backbone, restrict):
    """(pool, embeddings, gold) with gold checked against the pool's tasks."""
    db = open_store(pool_dir)  # never creates a store
    pool = Pool.open(db, backbone, checkpoint=checkpoint_kind(checkpoint))
    emb = EmbeddingSet.from_pool(pool, method)
    gold = (
        load_taskweb_gold(gold_path, taskweb_setting)
        if taskweb_setting
        else read_gold_csv(gold_path)
    )
    if restrict:
        keep = gold["target"].isin(emb.tasks) & gold["source"].isin(emb.tasks)
        dropped = int((~keep).sum())
        if dropped:
            err.print(
                f"[yellow]--restrict:[/yellow] left out {dropped} gold pair(s) whose tasks have "
                f"no {method} embedding in the pool"
            )
        gold = gold[keep]
    return pool, emb, check_gold(gold, emb.tasks)


@app.command()
def fit(
    pool: PoolOpt = Path("runs"),
    gold: GoldOpt = Path("gains.csv"),
    out_dir: Annotated[
        Path, typer.Option("--out", callback=output_folder, help="Scorer folder to write.")
    ] = Path("scorer"),
    pairs: PairsOpt = None,
    beta: BetaOpt = 1.0,
    kind: KindOpt = "light",
    method: MethodOpt = "prompt",
    ensemble: EnsembleOpt = 3,
    checkpoint: CheckpointOpt = "early",
    backbone: BackboneOpt = None,
    taskweb_setting: TaskwebOpt = None,
    restrict: RestrictOpt = False,
    seed: SeedOpt = 0,
    lr: LrOpt = None,
    epochs: EpochsOpt = None,
    train_layers: Annotated[
        int,
        typer.Option("--train-layers", help="Backbone kind: trainable top transformer layers."),
    ] = 1,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Fit an affinity scorer on gold gains over the pool's embeddings and save it."""
    _check_device(device)
    with guard():
        set_torch_threads(threads)
        pool_, emb, gold_df = _prepare(
            pool, gold, taskweb_setting, method, checkpoint, backbone, restrict
        )
        train = sample_pairs(gold_df, pairs, seed=seed)
        config = AffinityConfig(
            kind=kind,
            method=method,
            beta=beta,
            lr=lr,
            epochs=epochs,
            ensemble=ensemble,
            seed=seed,
            train_layers=train_layers,
        )
        location = pool_.backbone_location() if kind == "backbone" else None
        model = fit_affinity(
            train, emb, config, backbone_location=location, progress=not no_progress
        )
        folder = save_model(model, out_dir)
    info = model.info
    err.print(
        f"fitted {model.config.kind} scorer on {info.n_pairs} pairs of {len(info.tasks)} tasks "
        f"(lr {info.lr:g}, beta {model.config.beta:g}, ensemble {len(model.heads)}) in "
        f"{info.fit_seconds:.1f} s; saved to {folder}"
    )


@app.command()
def evaluate(
    pool: PoolOpt = Path("runs"),
    gold: GoldOpt = Path("gains.csv"),
    protocol: Annotated[
        Literal["leave-one-target-out", "leave-one-family-out"],
        typer.Option(
            "--protocol",
            help="Held-out unit: every target in turn, or every task family in turn.",
        ),
    ] = "leave-one-target-out",
    kind: KindOpt = "light",
    method: MethodOpt = "prompt",
    pairs: PairsOpt = None,
    beta: BetaOpt = 1.0,
    ensemble: EnsembleOpt = 3,
    checkpoint: CheckpointOpt = "early",
    backbone: BackboneOpt = None,
    taskweb_setting: TaskwebOpt = None,
    restrict: RestrictOpt = False,
    seed: SeedOpt = 0,
    lr: LrOpt = None,
    epochs: EpochsOpt = None,
    compare: Annotated[
        str,
        typer.Option(
            "--compare",
            help="Comma-separated untrained predictors scored on the same pairs "
            "('' for none); those the pool cannot serve are skipped.",
        ),
    ] = "tupate-prompt,prompt-mean-cosine,prompt-token-cosine,prompt-mean-euclidean,"
    "prompt-token-euclidean,prompt-mean-manhattan,prompt-token-manhattan,tupate-lora",
    data_dir: DataDirOpt = None,
    ks: Annotated[str, typer.Option("--ks", help="k of regret@k and gain@k.")] = "1,3",
    scores_out: Annotated[
        Path | None,
        typer.Option(
            "--scores-out", callback=output_file, help="Write the long-form scores CSV here."
        ),
    ] = None,
    as_json: JsonOpt = False,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Score the learned scorer on targets it never saw (all metrics, beside the untrained
    predictors and random)."""
    _check_device(device)
    with guard():
        set_torch_threads(threads)
        k_values = parse_ks(ks)
        pool_, emb, gold_df = _prepare(
            pool, gold, taskweb_setting, method, checkpoint, backbone, restrict
        )
        families = None
        if protocol == "leave-one-family-out":
            families = task_families(pool_, emb.tasks, data_dir)
        config = AffinityConfig(
            kind=kind, method=method, beta=beta, lr=lr, epochs=epochs, ensemble=ensemble, seed=seed
        )
        location = pool_.backbone_location() if kind == "backbone" else None
        learned = cross_validate(
            gold_df,
            emb,
            config,
            protocol=protocol,
            families=families,
            pairs=pairs,
            predictor=f"affinity-{kind}",
            backbone_location=location,
            progress=not no_progress,
        )
        names = [n.strip() for n in compare.split(",") if n.strip()]
        others, skipped = similarity_scores(pool_, gold_df, names)
        scores = pd.concat([learned.drop(columns=["std"]), others], ignore_index=True)
        scored_targets = set(learned["target"])
        gold_eval = gold_df[gold_df["target"].isin(scored_targets)]
        scores = scores[scores["target"].isin(scored_targets)]
        per_target, summary = evaluate_long(gold_eval, scores, ks=k_values)
    for name, reason in skipped.items():
        err.print(f"[yellow]skipped {name}:[/yellow] {reason}")
    if scores_out:
        learned_std = learned[["target", "source", "predictor", "std"]]
        scores.merge(learned_std, how="left").to_csv(scores_out, index=False)
    if as_json:
        out.print_json(json.dumps({"protocol": protocol, "summary": summary_records(summary)}))
    else:
        out.print(table(summary_table(summary), title=f"{protocol} ({kind} scorer)"))
