"""``taskscout rank`` (sources for one target) and ``taskscout predict`` (long-form scores of
several predictors for several targets)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from taskscout import api
from taskscout.cli.common import (
    BackboneOpt,
    BatchSizeOpt,
    CheckpointOpt,
    ChoicesColOpt,
    CsvOpt,
    DataDirOpt,
    DevFileOpt,
    DeviceOpt,
    EarlyEpochsOpt,
    EpochsOpt,
    JsonOpt,
    LabelColOpt,
    LayerReduceOpt,
    LrOpt,
    MaxDevOpt,
    MaxLenOpt,
    MaxTrainOpt,
    MethodOpt,
    MetricOpt,
    NameOpt,
    NoProgressOpt,
    PositiveLabelOpt,
    SeedOpt,
    StandardPoolOpt,
    TagsColOpt,
    TextColOpt,
    TextPairColOpt,
    ThreadsOpt,
    TokensColOpt,
    TypeOpt,
    check_epochs,
    close_when_command_ends,
    csv_list,
    err,
    flag,
    given,
    guard,
    open_store,
    output_file,
    print_frame,
)
from taskscout.cli.report import ReportOpt, check_report_path, rank_report
from taskscout.pools import standard_store

PREDICTOR_HELP = (
    "gain-model (default: predicted gain with a 90% interval, from LogME, -delta TuPaTE, "
    "text embeddings, data size, task type and the source prior), "
    "tupate (cosine of --method TuPaTE vectors), tupate-{lora,bitfit,prefix,prompt}, "
    "ensemble, ensemble-rank, prompt-{mean,token}-{manhattan,euclidean,cosine}, "
    "datasize, curvegrad, textemb, taskemb, logme, affinity (with --scorer), random"
)


def rank(
    target: Annotated[
        str,
        typer.Argument(
            help="Target: a task with a run in the store, a catalog task, hf:<name>, or a data "
            "file/folder (with --type and columns). Tuned first if the store has no run of it "
            "(into the standard pool's copy with the pool's recipe when no --pool is given)."
        ),
    ],
    store: StandardPoolOpt = None,
    predictor: Annotated[str, typer.Option("--predictor", help=PREDICTOR_HELP)] = "gain-model",
    method: MethodOpt = "lora",
    checkpoint: CheckpointOpt = "early",
    layer_reduce: LayerReduceOpt = "mean",
    backbone: BackboneOpt = None,
    data_dir: DataDirOpt = None,
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Comma-separated sources (default: every other task)."),
    ] = None,
    max_train: MaxTrainOpt = None,
    max_dev: MaxDevOpt = None,
    epochs: EpochsOpt = None,
    early_epochs: EarlyEpochsOpt = None,
    seed: SeedOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    max_len: MaxLenOpt = None,
    type_: TypeOpt = None,
    name: NameOpt = None,
    text_col: TextColOpt = None,
    text_pair_col: TextPairColOpt = None,
    label_col: LabelColOpt = None,
    tokens_col: TokensColOpt = None,
    tags_col: TagsColOpt = None,
    choices_col: ChoicesColOpt = None,
    dev_file: DevFileOpt = None,
    metric: MetricOpt = None,
    positive_label: PositiveLabelOpt = None,
    tune_target: Annotated[
        bool,
        flag(
            "--tune/--no-tune",
            help="Tune a target the store lacks (--no-tune: fail instead, and never create "
            "a store).",
        ),
    ] = True,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
    csv: CsvOpt = None,
    no_progress: NoProgressOpt = False,
    scorer: Annotated[
        Path | None,
        typer.Option("--scorer", help="--predictor affinity: folder of a fitted scorer."),
    ] = None,
    report: ReportOpt = None,
) -> None:
    """Rank the store's source tasks for TARGET (default: gain-model, the predicted gain in
    percent of the no-transfer score with its 90% interval and a likely-harmful flag): table of
    source, score, low, high, likely_harmful, rank, num_train, family (or --json / --csv).
    Without --pool: the standard pool shipped with taskscout (all-MiniLM-L6-v2 backbone;
    the target is tuned with the pool's recipe unless tuning options say otherwise)."""
    check_epochs(epochs, early_epochs)
    with guard():
        check_report_path(report)
        # no --pool: api.rank opens the standard pool's copy
        db = None if store is None else open_store(store, create=tune_target)
        df = api.rank(
            target,
            store=db,
            method=method,
            checkpoint=checkpoint,
            layer_reduce=layer_reduce,
            backbone=backbone,
            predictor=predictor,
            sources=csv_list(sources) or None,
            data_dir=data_dir,
            tune_target=tune_target,
            progress=not no_progress,
            scorer=scorer,
            **given(device=device, threads=threads),
            **given(
                max_train=max_train,
                max_dev=max_dev,
                epochs=epochs,
                early_epochs=early_epochs,
                seed=seed,
                batch_size=batch_size,
                lr=lr,
                max_len=max_len,
            ),
            **given(
                type=type_,
                name=name,
                text_col=text_col,
                text_pair_col=text_pair_col,
                label_col=label_col,
                tokens_col=tokens_col,
                tags_col=tags_col,
                choices_col=choices_col,
                dev_file=dev_file,
                metric=metric,
                positive_label=positive_label,
            ),
        )
    label = f"tupate-{method}" if predictor == "tupate" else predictor
    if "features_used" in df.attrs:
        err.print(f"{label}: features used: {', '.join(df.attrs['features_used'])}")
        for feature, why in df.attrs.get("missing", {}).items():
            err.print(f"  missing {feature}: {why}")
    print_frame(df, as_json=as_json, csv=csv, title=f"sources for {target} ({label}, {checkpoint})")
    if report is not None:
        with guard():
            rank_report(
                df,
                target=target,
                predictor=label,
                db=close_when_command_ends(standard_store()) if db is None else db,
                backbone=backbone,
                checkpoint=checkpoint,
                method=method,
                out=report,
            )


def predict(
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated target tasks.")],
    store: StandardPoolOpt = None,
    predictors: Annotated[
        str, typer.Option("--predictors", help="Comma-separated predictor names, or 'all'.")
    ] = "all",
    checkpoint: CheckpointOpt = "early",
    backbone: BackboneOpt = None,
    data_dir: DataDirOpt = None,
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Comma-separated sources (default: every other task)."),
    ] = None,
    out_csv: Annotated[
        str,
        typer.Option(
            "--out", callback=output_file, help="Long-form scores CSV to write ('-': stdout)."
        ),
    ] = "scores.csv",
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Score every source for several targets with several predictors (long-form CSV:
    target,source,predictor,score), ready for `taskscout evaluate --scores`. Reads the store
    (default: the standard pool shipped with taskscout); never tunes."""
    with guard():
        db = None if store is None else open_store(store)
        frame, skipped = api.predict(
            csv_list(targets),
            store=db,
            predictors=predictors,
            checkpoint=checkpoint,
            backbone=backbone,
            sources=csv_list(sources) or None,
            data_dir=data_dir,
            progress=True,
            **given(device=device, threads=threads),
        )
    for name, reason in skipped.items():
        err.print(f"[yellow]skipped {name}:[/yellow] {reason}")
    used = sorted(frame["predictor"].unique()) if len(frame) else []
    if out_csv == "-":
        sys.stdout.write(frame.to_csv(index=False))
    else:
        frame.to_csv(out_csv, index=False)
    where = "stdout" if out_csv == "-" else out_csv
    err.print(f"wrote {len(frame)} scores ({len(used)} predictors: {', '.join(used)}) to {where}")


def register(app: typer.Typer) -> None:
    """Add ``rank`` and ``predict`` to ``app``."""
    app.command()(rank)
    app.command()(predict)
