"""The tuning settings shared by every run of a transfer matrix, and the ids derived from them.

A source run, a no-transfer (baseline) run and a transfer run of the same (task, seed) use
exactly these settings; :meth:`TuneSettings.run_id` is the id :func:`taskscout.api.tune` gives
the ordinary run, so baselines and sources are ordinary, reusable store runs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from taskscout.api import CHECKPOINT_ALIASES, run_config
from taskscout.backbone import resolve_backbone
from taskscout.data import TaskData, load_task
from taskscout.store import RunStore
from taskscout.tuning.methods import get_method
from taskscout.tuning.trainer import TrainConfig, cpu_has_fast_bf16, resolve_device


@dataclass(frozen=True)
class TuneSettings:
    """Everything but the task and the seed that defines a tuning run (see :func:`api.tune`).

    ``bf16=None`` resolves like ``api.tune`` (native-bf16 CPUs only, never on a GPU) once, on
    the driver, via :meth:`resolved`, so that every worker trains with the same precision.
    """

    method: str = "prompt"
    backbone: str | None = None
    data_dir: str | None = None
    max_train: int | None = 1000
    max_dev: int | None = None
    epochs: int = 3
    early_epochs: int = 2
    batch_size: int = 32
    lr: float | None = None
    max_len: int = 128
    bf16: bool | None = None
    method_options: dict = field(default_factory=dict)

    def __post_init__(self):
        get_method(self.method)  # unknown method: clear ValueError now, not in a worker

    def resolved(self, device: str | None) -> TuneSettings:
        """A copy with ``bf16`` decided for ``device`` (as ``api.tune`` would)."""
        if self.bf16 is not None:
            return self
        bf16 = cpu_has_fast_bf16() and resolve_device(device).type == "cpu"
        return TuneSettings(**{**asdict(self), "bf16": bf16})

    def load(self, task: str, seed: int) -> TaskData:
        """The task's data exactly as ``api.tune`` subsamples it for ``seed``."""
        return load_task(
            task, data_dir=self.data_dir, max_train=self.max_train, max_dev=self.max_dev, seed=seed
        )

    def train_config(self, seed: int) -> TrainConfig:
        """The TrainConfig ``api.tune`` builds (``lr`` None: the method default)."""
        if self.bf16 is None:
            raise ValueError("call TuneSettings.resolved(device) first: bf16 is undecided")
        return TrainConfig(
            epochs=self.epochs,
            early_epochs=self.early_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_len=self.max_len,
            seed=seed,
            bf16=self.bf16,
        )

    def backbone_id(self) -> str:
        return resolve_backbone(self.backbone).backbone_id

    def run_config(self, data: TaskData, seed: int) -> dict:
        """The full config of the ordinary tuning run of ``data`` with ``seed``."""
        return run_config(
            data,
            self.backbone_id(),
            self.method,
            self.method_options or None,
            self.train_config(seed),
        )

    def run_id(self, data: TaskData, seed: int) -> str:
        """The id ``api.tune`` gives that run (= the target's config hash)."""
        return RunStore.config_hash(self.run_config(data, seed))

    def tune_kwargs(self, seed: int) -> dict:
        """Keyword arguments of ``api.tune`` for this run."""
        return {
            "method": self.method,
            "backbone": self.backbone,
            "data_dir": self.data_dir,
            "max_train": self.max_train,
            "max_dev": self.max_dev,
            "seed": seed,
            "epochs": self.epochs,
            "early_epochs": self.early_epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "max_len": self.max_len,
            "bf16": self.bf16,
            "method_options": self.method_options or None,
        }

    def to_dict(self) -> dict:
        """JSON-able settings; ``data_dir`` as given (it is not part of any hash)."""
        d = asdict(self)
        d["data_dir"] = None if self.data_dir is None else os.fspath(self.data_dir)
        return d

    def settings_hash(self) -> str:
        """Hash of what makes runs comparable: everything but ``data_dir`` (task data is
        identified by its fingerprint in each run's config), with the method's lr resolved."""
        d = self.to_dict()
        d.pop("data_dir")
        d["backbone"] = self.backbone_id()
        d["lr"] = self.lr if self.lr is not None else get_method(self.method).default_lr
        return RunStore.config_hash(d)


def checkpoint_kind(name: str) -> str:
    """``early`` | ``best`` (alias ``late``); ValueError otherwise."""
    try:
        return CHECKPOINT_ALIASES[name]
    except KeyError:
        raise ValueError(f"checkpoint must be 'early' or 'best', not {name!r}") from None
