"""taskscout: which source task should a low-resource target train on first?"""

__version__ = "0.1.0"
