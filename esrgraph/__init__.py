"""esrgraph: graph-aware, LLM-enhanced sequential recommendation for long-tail users and items.

``esrgraph.load_recommender(run_dir_or_config)`` loads a trained model to recommend with
(see :mod:`esrgraph.api`); importing ``esrgraph`` alone loads nothing heavy.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("load_recommender", "build_recommender", "train_recommender"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'esrgraph' has no attribute {name!r}")
