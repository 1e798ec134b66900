"""Leave-one-out evaluation: sampled and full-ranking protocols, metrics by group."""
