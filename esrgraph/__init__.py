"""esrgraph: graph-aware, LLM-enhanced sequential recommendation for long-tail users and items."""

__version__ = "0.1.0"
