#!/usr/bin/env python
"""Build the demo task suite bundled with taskscout (src/taskscout/data/demo/).

Reads the shared benchmark data (``catalog.json`` + ``<task>/{train,dev}.jsonl``) and writes, for
the demo target and its candidate sources, a stratified seeded subsample (at most 300 train and
150 dev rows per task) plus ``catalog.json`` and ``PROVENANCE.md``. Deterministic and re-runnable:
the same input gives byte-identical output.

    python tools/build_demo_suite.py [SHARED_DATA_DIR] [--out DIR]

Only tasks whose licences permit redistribution are included (see PROVENANCE.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from taskscout.data import (  # noqa: E402
    DEMO_SOURCES,
    DEMO_TARGET,
    load_catalog_entries,
    load_task,
    write_jsonl,
)

MAX_TRAIN = 300
MAX_DEV = 150
SEED = 0
TASKS = (DEMO_TARGET, *DEMO_SOURCES)

#: Per task: the licence the redistributed subset is under, and what it asks of redistributors.
#: (The exact licence statement recorded in the shared catalog is quoted in PROVENANCE.md too.)
TERMS = {
    "mnli": (
        "OANC / CC BY-SA 3.0 (MultiNLI)",
        "Share-alike: this subset is an adaptation of MultiNLI and is redistributed under "
        "CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/); anything built from it "
        "and shared must carry the same licence. Attribution: Williams, Nangia and Bowman "
        "(2018), A Broad-Coverage Challenge Corpus for Sentence Understanding through Inference.",
    ),
    "snli": (
        "CC BY-SA 4.0",
        "Share-alike: this subset is an adaptation of SNLI and is redistributed under "
        "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/); adaptations you share "
        "must carry the same (or a compatible) licence. Attribution: Bowman, Angeli, Potts and "
        "Manning (2015), A large annotated corpus for learning natural language inference.",
    ),
    "qnli": (
        "CC BY-SA 4.0 (derived from SQuAD v1.1)",
        "Share-alike: QNLI is derived from SQuAD v1.1 (CC BY-SA 4.0); this subset is "
        "redistributed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/) and "
        "adaptations you share must carry the same (or a compatible) licence. Attribution: "
        "Rajpurkar et al. (2016), SQuAD; Wang et al. (2019), GLUE.",
    ),
    "boolq": (
        "CC BY-SA 3.0",
        "Share-alike: this subset is an adaptation of BoolQ and is redistributed under "
        "CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/); anything built from it "
        "and shared must carry the same licence. Attribution: Clark et al. (2019), BoolQ: "
        "Exploring the Surprising Difficulty of Natural Yes/No Questions.",
    ),
    "sms_spam": (
        "CC BY 4.0",
        "Attribution, no share-alike: redistributed under CC BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/); credit Almeida, Gomez Hidalgo and "
        "Yamakami (2011), Contributions to the Study of SMS Spam Filtering, and indicate "
        "changes. No share-alike obligation.",
    ),
    "copa": (
        "BSD 2-Clause",
        "No share-alike. BSD 2-Clause: redistributions must retain the copyright notice of the "
        "COPA authors (Roemmele, Bejan and Gordon 2011, University of Southern California), the "
        "two conditions and the disclaimer (reproduced at the end of this file). Attribution: "
        "Roemmele, Bejan and Gordon (2011), Choice of Plausible Alternatives: An Evaluation of "
        "Commonsense Causal Reasoning.",
    ),
}

BSD2 = """\
Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions
   and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials provided
   with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER
IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT
OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def _subsample_note(n_train: tuple[int, int], n_dev: tuple[int, int], strat: str) -> str:
    def part(split: str, before: int, after: int) -> str:
        if after == before:
            return f"{split}: all {before} rows kept"
        return f"{split}: {before} -> {after} ({strat})"

    return (
        f"taskscout demo subset: seeded (random.Random({SEED})) sample of at most {MAX_TRAIN} "
        f"train / {MAX_DEV} dev rows of the shared split, rows unchanged, original order kept; "
        f"{part('train', *n_train)}; {part('dev', *n_dev)}."
    )


def _label_counts(rows: list[dict]) -> str:
    counts: dict = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    return ", ".join(f"{k}: {counts[k]}" for k in sorted(counts, key=str))


def build(src: Path, out: Path) -> None:
    entries = {e["name"]: e for e in load_catalog_entries(src)}
    missing = [t for t in TASKS if t not in entries]
    if missing:
        raise SystemExit(f"{src}: catalog lacks demo task(s): {', '.join(missing)}")
    # Start clean so a removed task does not linger.
    if out.exists():
        for child in sorted(out.iterdir()):
            if child.is_dir() and child.name in entries:
                shutil.rmtree(child)
            elif child.name in ("catalog.json", "PROVENANCE.md"):
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)

    demo_entries = []
    provenance = []
    for name in TASKS:
        entry = entries[name]
        full = load_task(name, data_dir=src)
        task = load_task(name, data_dir=src, max_train=MAX_TRAIN, max_dev=MAX_DEV, seed=SEED)
        # Rows are kept exactly as they are (no truncation, no rewriting): check it.
        originals = {
            split: set((src / name / f"{split}.jsonl").read_text(encoding="utf-8").splitlines())
            for split in ("train", "dev")
        }
        for split, rows in (("train", task.train), ("dev", task.dev)):
            for row in rows:
                line = json.dumps(row, ensure_ascii=False)
                if line not in originals[split]:
                    raise SystemExit(f"{name}/{split}: a sampled row differs from its source line")
            write_jsonl(out / name / f"{split}.jsonl", rows)
        strat = (
            "stratified by label"
            if task.spec.type.value in ("classification", "pair_classification")
            else "stratified by answer index"
            if task.spec.type.value == "multiple_choice"
            else "random"
        )
        note = _subsample_note(
            (len(full.train), len(task.train)), (len(full.dev), len(task.dev)), strat
        )
        demo = dict(entry)
        demo["num_train"] = len(task.train)
        demo["num_dev"] = len(task.dev)
        demo["notes"] = f"{entry.get('notes', '').rstrip()} {note}".strip()
        demo_entries.append(demo)
        provenance.append(_provenance_section(entry, full, task, note))

    (out / "catalog.json").write_text(
        json.dumps(demo_entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "PROVENANCE.md").write_text(_provenance_doc(provenance), encoding="utf-8")


def _provenance_section(entry: dict, full, task, note: str) -> str:
    name = entry["name"]
    short, terms = TERMS[name]
    lines = [
        f"## {name} — {entry.get('title', name)}",
        "",
        f"* Type / metric: {entry['type']} / {entry['metric']}; rows: train {len(task.train)}, "
        f"dev {len(task.dev)} (label counts: train {_label_counts(task.train)}; dev "
        f"{_label_counts(task.dev)}).",
        "* Original source files (repository, path, commit):",
    ]
    for s in entry.get("source", []):
        lines.append(f"  * `{s['repo']}` — `{s['path']}` @ `{s['commit']}`")
    lines += [
        f"* Licence (as recorded in the shared catalog): {entry.get('license', 'unknown')}",
        f"* Licence of this subset: {short}. {terms}",
        f"* How the shared split was made: {entry.get('notes', '')}",
        f"* How this subset was made: {note}",
        "",
    ]
    return "\n".join(lines)


def _provenance_doc(sections: list[str]) -> str:
    head = f"""\
# Provenance of the bundled demo suite

This folder holds a small demo suite for taskscout: the target task `{DEMO_TARGET}` and the
candidate source tasks {", ".join(f"`{t}`" for t in DEMO_SOURCES)}. It is generated by
`tools/build_demo_suite.py` from the project's shared benchmark data (uniform train/dev splits
built from public copies of each dataset; whitespace collapsed, duplicates removed, splits as
described per task below) and must not be edited by hand.

Each task here is a seeded random sample (`random.Random({SEED})`, stratified by label for the
classification tasks and by answer index for COPA) of at most {MAX_TRAIN} train and {MAX_DEV} dev
rows of the shared split. Rows are copied unchanged (nothing truncated, boolq passages included)
and keep their original order. These are *modified* versions of the original datasets: they are
reformatted to JSON lines (`text`/`text_pair`/`label`; COPA: `text`/`choices`/`label`), split and
subsampled as described below, and their numbers are not comparable with published results.

Only datasets whose licences allow redistribution are included. The data files are **not** under
taskscout's Apache-2.0 licence; each task keeps its own licence:

| task | licence of the subset | share-alike |
|---|---|---|
"""
    table = []
    for name in TASKS:
        short, _ = TERMS[name]
        sa = "yes" if "SA" in short else "no"
        table.append(f"| {name} | {short} | {sa} |")
    share_alike = """
**Share-alike terms.** The mnli, snli, qnli and boolq subsets are adaptations of CC BY-SA
material (mnli, boolq: CC BY-SA 3.0; snli, qnli: CC BY-SA 4.0) and are redistributed under those
same licences. If you share these files or anything adapted from them (e.g. an edited or
re-sampled version), you must give credit, indicate the changes, and license the result under the
same licence (for 4.0, or a licence listed as compatible). Models trained on the data are not
covered by this note; consult the licences. sms_spam (CC BY 4.0) requires attribution only; COPA
(BSD 2-Clause) requires keeping its copyright notice, conditions and disclaimer.
"""
    bsd = f"""
## BSD 2-Clause licence (COPA)

COPA (Choice of Plausible Alternatives) is copyright its authors, Melissa Roemmele, Cosmin Adrian
Bejan and Andrew S. Gordon (University of Southern California), and is distributed by them under
the BSD 2-Clause licence; the original copyright notice ships with COPA
(https://people.ict.usc.edu/~gordon/copa.html). The licence's conditions and disclaimer:

{BSD2}"""
    return head + "\n".join(table) + "\n" + share_alike + "\n" + "\n".join(sections) + bsd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "src",
        nargs="?",
        default=str(REPO.parent / "shared" / "data"),
        help="shared data folder with catalog.json (default: ../shared/data from the repo)",
    )
    parser.add_argument(
        "--out",
        default=str(REPO / "src" / "taskscout" / "data" / "demo"),
        help="output folder (default: src/taskscout/data/demo)",
    )
    args = parser.parse_args(argv)
    build(Path(args.src), Path(args.out))
    print(f"wrote demo suite ({', '.join(TASKS)}) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
