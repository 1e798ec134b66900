"""Scoring items nobody has interacted with: the collaborative view of a cold item, mapped from its other views.

A cold item has a semantic view (its text) and, with a graph fusion, a graph
view, but its id embedding never trained. After training, a ridge regression
from the views a cold item has (semantic ⊕ graph, as the trained model maps
them) to the trained id embeddings is fitted on the warm items, and each cold
item's id embedding is replaced by its prediction. A regression predicts a
conditional mean, so its predictions are shrunk towards the mean embedding
(on amazon-scientific their norms came out about a fifth of the warm items'),
which buries every cold item under the warm ones; the predictions are
therefore rescaled, all by one factor, to the warm embeddings' mean norm. The
cold item is then scored like any other, through every view.
"""

from __future__ import annotations

import logging

import torch

from .model import SeqRecommender

log = logging.getLogger(__name__)
RIDGE = 1e-2  # relative to the mean diagonal of the warm items' Gram matrix: conditioning, light shrinkage


@torch.no_grad()
def map_cold_items(model: SeqRecommender) -> dict:
    """Fill the cold items' id embeddings from their other views; returns what was fitted (fit R² on warm items)."""
    warm, total = model.num_warm, model.num_items
    if warm == total:
        return {}
    views = model.views
    sources = [t for name, t in zip(views.names, views.tables()) if name != "collaborative"]
    if not sources:
        log.warning("cold items: a model with item ids only cannot score them; they keep their initial embeddings")
        return {"cold_items": total - warm, "mapped": False}
    x = torch.cat(sources + [torch.ones(total + 1, 1, device=sources[0].device)], dim=1)
    y = views.ids.weight[: total + 1]
    xw, yw = x[1 : warm + 1], y[1 : warm + 1]
    gram = xw.T @ xw
    ridge = RIDGE * gram.diagonal().mean()
    weights = torch.linalg.solve(gram + ridge * torch.eye(len(gram), device=gram.device), xw.T @ yw)
    fit = 1.0 - float(((xw @ weights - yw) ** 2).sum() / ((yw - yw.mean(0)) ** 2).sum())
    mapped = x[warm + 1 :] @ weights
    scale = yw.norm(dim=1).mean() / mapped.norm(dim=1).mean().clamp_min(1e-12)  # undo the regression's shrinkage
    views.ids.weight[warm + 1 : total + 1] = mapped * scale
    log.info(
        "cold items: %d id embeddings mapped from %s (fit R² %.3f on warm items)",
        total - warm,
        " ⊕ ".join(n for n in views.names if n != "collaborative"),
        fit,
    )
    return {
        "cold_items": total - warm,
        "mapped": True,
        "warm_fit_r2": round(fit, 4),
        "norm_scale": round(float(scale), 3),
    }
