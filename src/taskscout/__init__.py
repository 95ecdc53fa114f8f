"""taskscout: which source task should a low-resource target train on first?

import taskscout
run = taskscout.tune("mnli", method="lora", store="runs")          # bundled demo task
emb = taskscout.embed("mnli", method="lora", checkpoint="early", store="runs")
table = taskscout.rank("mnli", store="runs", method="lora")       # pandas DataFrame
"""

__version__ = "0.1.0"

__all__ = ["embed", "load_task", "predict", "rank", "tune", "__version__"]


def __getattr__(name):  # lazy: `import taskscout` stays fast (no torch import)
    if name in ("tune", "embed", "rank", "predict"):
        from taskscout import api

        return getattr(api, name)
    if name == "load_task":
        from taskscout.data import load_task

        return load_task
    raise AttributeError(f"module 'taskscout' has no attribute {name!r}")
