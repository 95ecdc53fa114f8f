"""The report's figures: each function takes frames or arrays and returns SVG text.

matplotlib is imported inside :func:`_pyplot` (Agg backend) so that importing the package (and
so the CLI) stays fast. Text is kept as SVG text (``svg.fonttype = none``: smaller files, the
browser's fonts); every figure gets its own hash salt so that the element ids of several inline
SVGs never collide; no date metadata, so the same input gives the same bytes.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

Z90 = 1.6448536269514722
"""z of a two-sided 90 % normal interval: mean +- Z90 * std."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_svg(fig, salt: str) -> str:
    """``fig`` as SVG text (closed afterwards); ``salt`` makes its element ids unique."""
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def ranking_bars(ranking: pd.DataFrame, *, title: str, score_label: str) -> str:
    """Horizontal bars of ``ranking.score`` (rank 1 on top), a 90 % interval (``std`` x 1.645)
    where a ``std`` column exists, and the measured gain (``gold`` column, NaN = unknown) as a
    black diamond on the same axis."""
    plt = _pyplot()
    df = ranking.reset_index(drop=True)
    n = len(df)
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * n + 1.4))
    y = np.arange(n)[::-1]
    err = Z90 * df["std"].to_numpy(float) if "std" in df else None
    ax.barh(y, df["score"], xerr=err, color="#4c78a8", alpha=0.8, capsize=3, label=score_label)
    if "gold" in df and df["gold"].notna().any():
        ax.scatter(df["gold"], y, marker="D", color="black", zorder=3, label="measured gain")
    ax.set_yticks(y, df["source"])
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return to_svg(fig, "ranking")


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal-component coordinates of the rows of ``vectors`` (n x d,
    n >= 2), centred; a missing second component (n = 2 or rank 1) is zeros."""
    x = np.asarray(vectors, dtype=float)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an (n >= 2) x d array of vectors, got shape {x.shape}")
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    coords = u[:, :2] * s[:2]
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((len(x), 1))])
    return coords


def map_2d(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``vectors``: UMAP when ``umap-learn`` is installed and
    there are >= 10 rows, PCA otherwise; returns (coords n x 2, the method's name)."""
    try:
        import umap  # optional
    except ImportError:
        umap = None
    if umap is not None and len(vectors) >= 10:
        n_neighbors = min(15, len(vectors) - 1)
        reducer = umap.UMAP(n_neighbors=n_neighbors, random_state=seed)
        return reducer.fit_transform(np.asarray(vectors, dtype=float)), "UMAP"
    return pca_2d(vectors), "PCA"


def task_map(
    coords: np.ndarray,
    names: list[str],
    families: list[str | None],
    target: str | None,
    *,
    title: str,
    axis: str = "PC",
) -> str:
    """A scatter of 2-D task coordinates, one colour per family (``None`` = "unknown"), each
    point labelled, the target drawn as a large red star."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    fams = [f or "unknown" for f in families]
    palette = plt.get_cmap("tab10")
    for i, fam in enumerate(sorted(set(fams))):
        idx = [j for j, f in enumerate(fams) if f == fam]
        ax.scatter(coords[idx, 0], coords[idx, 1], s=60, color=palette(i % 10), label=fam)
    for j, name in enumerate(names):
        ax.annotate(name, coords[j], xytext=(4, 4), textcoords="offset points", fontsize=8)
        if name == target:
            ax.scatter(
                *coords[j],
                marker="*",
                s=380,
                color="red",
                edgecolor="black",
                zorder=4,
                label=f"target: {name}",
            )
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return to_svg(fig, "taskmap")


def gain_heatmap(
    gains: pd.DataFrame, *, title: str, target: str | None = None, salt: str = "heatmap"
) -> str:
    """Target (rows) x source (columns) heatmap of ``gains.gain`` (diverging colours centred on
    0). Each cell is annotated with its gain and, where ``gain_std`` exists, ``±std`` (and the
    cell's marker ``n_seeds`` in the caption is up to the caller); the target's row is boxed."""
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    mat = gains.pivot(index="target", columns="source", values="gain")
    names = sorted(set(mat.index) | set(mat.columns))
    mat = mat.reindex(index=names, columns=names)
    std = (
        gains.pivot(index="target", columns="source", values="gain_std").reindex(
            index=names, columns=names
        )
        if "gain_std" in gains
        else None
    )
    values = mat.to_numpy(float)
    finite = values[np.isfinite(values)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    bound = bound or 1.0
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.72 * n, 0.9 + 0.55 * n))
    im = ax.imshow(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -bound, bound))
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            if not math.isfinite(v):
                continue
            text = f"{v:.1f}"
            if std is not None and math.isfinite(std.iat[i, j]):
                text += f"\n±{std.iat[i, j]:.1f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if abs(v) > 0.6 * bound else "black",
            )
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if target in names:
        i = names.index(target)
        ax.add_patch(plt.Rectangle((-0.5, i - 0.5), n, 1, fill=False, lw=2, ec="black"))
    fig.colorbar(im, ax=ax, shrink=0.7, label="gain")
    ax.set_title(title, fontsize=10)
    return to_svg(fig, salt)


def pred_vs_gold(points: pd.DataFrame, *, title: str, score_label: str) -> str:
    """Scatter of predicted ``score`` against measured ``gain`` (columns ``target, score,
    gain`` and optionally ``std``: 90 % error bars), one colour per target, with the
    Spearman correlation over all points in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    palette = plt.get_cmap("tab20")
    for i, (target, grp) in enumerate(points.groupby("target", sort=True)):
        err = Z90 * grp["std"].to_numpy(float) if "std" in grp else None
        ax.errorbar(
            grp["score"],
            grp["gain"],
            xerr=err,
            fmt="o",
            ms=4,
            alpha=0.8,
            color=palette(i % 20),
            label=str(target),
            elinewidth=0.6,
        )
    rho = points["score"].rank().corr(points["gain"].rank())
    ax.set_xlabel(score_label)
    ax.set_ylabel("measured gain")
    ax.axhline(0, color="#888", lw=0.8)
    ax.set_title(f"{title} (Spearman over all pairs {rho:.2f})", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="best", title="target", title_fontsize=7)
    return to_svg(fig, "scatter")


def interval_bars(
    table: pd.DataFrame,
    *,
    metric: str,
    title: str,
    baselines: set[str] | frozenset[str],
    salt: str,
) -> str:
    """Horizontal bars of ``table[metric]`` per ``table.predictor`` with its 90 % bootstrap
    interval (columns ``<metric> lo`` / ``<metric> hi``); baseline rows drawn grey."""
    plt = _pyplot()
    df = table.reset_index(drop=True)
    n = len(df)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * n + 1.3))
    y = np.arange(n)[::-1]
    mean = df[metric].to_numpy(float)
    lo = df[f"{metric} lo"].to_numpy(float)
    hi = df[f"{metric} hi"].to_numpy(float)
    colors = ["#bbbbbb" if p in baselines else "#4c78a8" for p in df["predictor"]]
    ax.barh(y, mean, color=colors)
    ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="none", ecolor="black", capsize=2, lw=0.8)
    ax.set_yticks(y, df["predictor"], fontsize=8)
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_xlabel(f"{metric} (mean over targets, 90 % bootstrap interval)")
    ax.set_title(title, fontsize=10)
    return to_svg(fig, salt)
