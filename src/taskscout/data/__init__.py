"""Task data: specs, readers (JSONL, CSV/TSV, Parquet, Hugging Face), validation, the catalog.

Usage::

    from taskscout.data import load_task
    task = load_task("mnli", max_train=100)  # catalog: bundled demo suite or $TASKSCOUT_DATA_DIR
    mine = load_task("reviews.csv", type="classification", text_col="review", label_col="stars")
"""

from taskscout.data.catalog import (
    DATA_DIR_ENV,
    DEMO_SOURCES,
    DEMO_TARGET,
    catalog_table,
    demo_data_dir,
    load_catalog,
    load_catalog_entries,
    resolve_data_dir,
)
from taskscout.data.formats import SUFFIXES, RawRecords, read_file, read_records, write_jsonl
from taskscout.data.loading import load_task
from taskscout.data.sampling import carve_dev, stratify_key, subsample_rows
from taskscout.data.spec import (
    DEFAULT_METRIC,
    METRICS,
    METRICS_BY_TYPE,
    TaskData,
    TaskSpec,
    TaskType,
)
from taskscout.data.validation import Columns, TaskDataError, canonicalize_rows

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_METRIC",
    "DEMO_SOURCES",
    "DEMO_TARGET",
    "METRICS",
    "METRICS_BY_TYPE",
    "SUFFIXES",
    "Columns",
    "RawRecords",
    "TaskData",
    "TaskDataError",
    "TaskSpec",
    "TaskType",
    "canonicalize_rows",
    "carve_dev",
    "catalog_table",
    "demo_data_dir",
    "load_catalog",
    "load_catalog_entries",
    "load_task",
    "read_file",
    "read_records",
    "resolve_data_dir",
    "stratify_key",
    "subsample_rows",
    "write_jsonl",
]
