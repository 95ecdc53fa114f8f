"""The one tuning configuration, and the identity of a run derived from it.

A run is (task data, :class:`TuneConfig`, seed). Its id is the hash of :meth:`TuneConfig.
run_config`: the task's name and data fingerprint, the backbone id, the method and its config,
and the trainer's hyper-parameters with every default resolved (the method's learning rate, the
early-checkpoint epoch, bf16). Two runs with equal ids are the same computation, so a store that
holds one never trains it again; ``tune``, transfer runs (whose no-transfer baseline *is* the
target's ordinary run), pool building and the benchmarks all derive ids here.

Method-specific defaults are attributes of the method class
(:class:`taskscout.tuning.methods.TuningMethod`: ``default_lr``, ``embedding_reduce``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field

from taskscout.backbone import resolve_backbone
from taskscout.data import TaskData, load_task
from taskscout.store import RunStore
from taskscout.tuning.device import cpu_has_fast_bf16, resolve_device
from taskscout.tuning.methods import TuningMethod, get_method

#: Checkpoints every run stores: after ``early_epochs`` and at the best dev score.
CHECKPOINTS: tuple[str, ...] = ("early", "best")
CHECKPOINT_ALIASES = {"early": "early", "best": "best", "late": "best"}
#: The early checkpoint's epoch when ``early_epochs`` is not given (capped at ``epochs``).
DEFAULT_EARLY_EPOCHS = 2
#: With a step budget (``min_steps``) and no ``early_epochs``: the early checkpoint is taken
#: after this fraction of the epochs (rounded, at least 1), as 2 of 3 epochs are without one.
EARLY_FRACTION = 2 / 3
#: The recipe's step budget (``benchmarks/README.md``, recipe.py): 180 updates, i.e. the 3 epochs
#: of a 2,000-example task, for every smaller task too.
RECIPE_MIN_STEPS = 180
#: A step budget never raises the epoch count above this (tiny tasks would loop for ever).
MAX_BUDGET_EPOCHS = 50
#: Version of the hashed run-config layout (bump only with a migration of stored ids).
RUN_CONFIG_FORMAT = 1


def checkpoint_kind(name: str) -> str:
    """``early`` | ``best`` (alias ``late``); ValueError naming the choices otherwise."""
    try:
        return CHECKPOINT_ALIASES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"checkpoint must be 'early' or 'best' (alias 'late'), not {name!r}"
        ) from None


def config_hash(config: dict) -> str:
    """The run id of a run config (:meth:`taskscout.store.RunStore.config_hash`)."""
    return RunStore.config_hash(config)


@dataclass(frozen=True)
class TuneConfig:
    """Everything but the task and the seed that defines a tuning run.

    Data: ``max_train`` / ``max_dev`` keep seeded subsamples (None: all rows); ``data_dir`` is
    where catalog tasks are read from (not part of any hash: the data's fingerprint is).
    Trainer: AdamW with linear warmup (``warmup_ratio`` of the steps) and decay, ``lr`` None =
    the method's ``default_lr``; ``early_epochs`` None = min(2, ``epochs``), an explicit value
    above ``epochs`` is an error; ``bf16`` None = decided by :meth:`resolved` for the device
    (native-bf16 CPUs only; fp32 on GPUs). ``max_len``: tokens per text (pair: per pair).

    Step budget (the recipe for small tasks): with ``min_steps`` set, a task of n training
    examples trains for ``E(n) = min(50, max(epochs, ceil(min_steps / ceil(n / batch_size))))``
    epochs, so that a 250-example task gets as many optimiser updates as a 2,000-example one;
    its early checkpoint, unless ``early_epochs`` says, comes after ``max(1, round(2/3 E(n)))``
    epochs. :meth:`epochs_for` / :meth:`early_epoch_for` give both for a train size.
    """

    method: str = "lora"
    backbone: str | None = None
    data_dir: str | None = None
    max_train: int | None = None
    max_dev: int | None = None
    epochs: int = 3
    early_epochs: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    max_len: int = 128
    bf16: bool | None = None
    method_options: dict = field(default_factory=dict)
    min_steps: int | None = None

    def __post_init__(self):
        cls = get_method(self.method)  # unknown method: ValueError naming the choices
        if self.method_options is None:
            object.__setattr__(self, "method_options", {})
        fields = cls.config_class.__dataclass_fields__
        unknown = set(self.method_options) - set(fields)
        if unknown:
            raise ValueError(
                f"unknown method option(s) {sorted(unknown)} for {self.method}; "
                f"valid: {sorted(fields)}"
            )
        for name, low in (("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be >= {low}, not {getattr(self, name)}")
        if self.max_len < 8:
            raise ValueError(f"max_len must be >= 8, not {self.max_len}")
        if self.early_epochs is not None:
            if self.early_epochs < 1:
                raise ValueError(f"early_epochs must be >= 1, not {self.early_epochs}")
            if self.early_epochs > self.epochs:
                raise ValueError(
                    f"early_epochs ({self.early_epochs}) must not exceed epochs "
                    f"({self.epochs}): the early checkpoint is taken during training"
                )
        for name in ("max_train", "max_dev", "min_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or unset for all rows), not {value}")
        if self.lr is not None and not self.lr >= 0:  # 0: a run that keeps its init (tests)
            raise ValueError(f"lr must be >= 0, not {self.lr}")
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir))

    # --- options ------------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The keyword options a ``tune``-like call accepts (the field names)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, **options) -> TuneConfig:
        """A config from keyword options (None values = the defaults); TypeError naming unknown
        options."""
        unknown = set(options) - set(cls.option_names())
        if unknown:
            raise TypeError(f"unknown tuning option(s) {sorted(unknown)}")
        return cls(**{k: v for k, v in options.items() if v is not None})

    def replace(self, **changes) -> TuneConfig:
        return dataclasses.replace(self, **changes)

    # --- resolved defaults ----------------------------------------------------------------
    @property
    def method_class(self) -> type[TuningMethod]:
        return get_method(self.method)

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else self.method_class.default_lr

    @property
    def resolved_early_epochs(self) -> int:
        if self.early_epochs is not None:
            return self.early_epochs
        return min(DEFAULT_EARLY_EPOCHS, self.epochs)

    def epochs_for(self, n_train: int) -> int:
        """Epochs a run on ``n_train`` examples trains (``epochs`` unless a step budget raises
        it; see the class docstring)."""
        if self.min_steps is None:
            return self.epochs
        steps_per_epoch = max(1, math.ceil(int(n_train) / self.batch_size))
        needed = math.ceil(self.min_steps / steps_per_epoch)
        return max(self.epochs, min(MAX_BUDGET_EPOCHS, needed))

    def early_epoch_for(self, n_train: int) -> int:
        """The early checkpoint's epoch for a run on ``n_train`` examples."""
        if self.min_steps is None or self.early_epochs is not None:
            return self.resolved_early_epochs
        return max(1, round(EARLY_FRACTION * self.epochs_for(n_train)))

    def resolved(self, device: str | None = None) -> TuneConfig:
        """A copy with ``bf16`` decided for ``device`` (native-bf16 CPUs only, never on a GPU).
        Decide it once, where the runs are planned, so every worker trains alike."""
        if self.bf16 is not None:
            return self
        bf16 = cpu_has_fast_bf16() and resolve_device(device).type == "cpu"
        return self.replace(bf16=bf16)

    def backbone_id(self) -> str:
        return resolve_backbone(self.backbone).backbone_id

    # --- identity -------------------------------------------------------------------------
    def train_dict(self, seed: int) -> dict:
        """The trainer's hyper-parameters of a run, every default resolved (hashed)."""
        if self.bf16 is None:
            raise ValueError("bf16 is undecided: call TuneConfig.resolved(device) first")
        budget = {}
        if self.min_steps is not None:  # only then: ids of runs without a budget are unchanged
            budget = {"min_steps": int(self.min_steps), "max_budget_epochs": MAX_BUDGET_EPOCHS}
        return {
            "epochs": self.epochs,
            "early_epochs": (
                "2/3 of the epochs"
                if self.min_steps is not None and self.early_epochs is None
                else self.resolved_early_epochs
            ),
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
            "lr": self.resolved_lr,
            "weight_decay": self.weight_decay,
            "warmup_ratio": self.warmup_ratio,
            "max_grad_norm": self.max_grad_norm,
            "max_len": self.max_len,
            "seed": int(seed),
            "bf16": bool(self.bf16),
            **budget,
        }

    def method_config(self) -> dict:
        """The method's config with its defaults filled in (hashed)."""
        return self.method_class.config_class(**self.method_options).to_dict()

    def run_config(self, data: TaskData, seed: int) -> dict:
        """The full configuration of the run of ``data`` with ``seed``; its hash is the id."""
        return {
            "task": data.spec.name,
            "task_fingerprint": data.fingerprint(),
            "backbone": self.backbone_id(),
            "method": self.method,
            "method_config": self.method_config(),
            "train": self.train_dict(seed),
            "format": RUN_CONFIG_FORMAT,
        }

    def run_id(self, data: TaskData, seed: int) -> str:
        return config_hash(self.run_config(data, seed))

    def load(self, task: str | os.PathLike, seed: int, **task_options) -> TaskData:
        """The task's data as a run with ``seed`` subsamples it."""
        return load_task(
            task,
            data_dir=self.data_dir,
            max_train=self.max_train,
            max_dev=self.max_dev,
            seed=seed,
            **task_options,
        )

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TuneConfig:
        return cls(**d)

    def settings_hash(self) -> str:
        """Hash of what makes runs of different tasks comparable (a transfer matrix's
        settings): every field but ``data_dir``, with the backbone id and lr resolved."""
        d = self.to_dict()
        d.pop("data_dir")
        if d["min_steps"] is None:  # hashes of settings without a budget are unchanged
            d.pop("min_steps")
        d["backbone"] = self.backbone_id()
        d["lr"] = self.resolved_lr
        d["early_epochs"] = (
            self.early_epochs if self.min_steps is not None else self.resolved_early_epochs
        )
        return config_hash(d)
