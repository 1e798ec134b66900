"""Item representations, one per view, and the ways graph embeddings fuse into them.

Views (each [..., d] per item id):

* ``semantic``: frozen LLM item embeddings through an adapter (d_llm → d_llm/2 → d);
* ``collaborative``: trainable item-id embeddings (initialised with the PCA of the
  LLM embeddings in LLM-ESR, randomly in the plain baseline);
* ``graph`` (fusion ``view``): pretrained graph item embeddings through a linear map.

Graph fusion (``seq.fusion``):

* ``init``: the collaborative view starts from PCA and graph embeddings
  concatenated and reduced to d (the seed project's way);
* ``view``: a third view through the shared encoder, with its own score term.

A gated fusion (a learned per-item gate adding a projected graph embedding to
the collaborative view) was removed: it lowered NDCG@10 in every measurement
(README, "What was removed").

Item ids run 1..N; 0 is padding; N + 1 is the mask token (Bert4Rec).
"""

from __future__ import annotations

import torch
from torch import nn

ID_INIT_STD = 0.02


class ViewTables:
    """Every item's views side by side, [N + 1, V * d], concatenated only a block of rows at a time.

    Ranking reads a block of the catalogue per pass; the whole concatenation was a second copy of
    every view (1.9 GB at a million items and two views of 256), held through every validation.
    ``tables[lo:hi]`` gives the rows' [hi - lo, V * d] tensor; :meth:`full` the whole table.
    """

    def __init__(self, views: list[torch.Tensor]):
        self.views = views

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), sum(v.shape[1] for v in self.views)))

    def __len__(self) -> int:
        return self.views[0].shape[0]

    def __getitem__(self, rows) -> torch.Tensor:
        return torch.cat([v[rows] for v in self.views], dim=-1)

    def full(self) -> torch.Tensor:
        return self[:]


class ItemViews(nn.Module):
    def __init__(
        self,
        num_items: int,
        d: int,
        llm: torch.Tensor | None,
        init: torch.Tensor | None,
        graph: torch.Tensor | None,
        fusion: str,
        mask_token: bool,
        graph_finetune: bool = False,
    ):
        super().__init__()
        self.num_items = num_items
        self.fusion = fusion if graph is not None else "none"
        self.ids = nn.Embedding(num_items + 2, d, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=ID_INIT_STD)
        with torch.no_grad():
            if init is not None:
                self.ids.weight[: num_items + 1] = init
            self.ids.weight[0].zero_()
        self.semantic = None
        if llm is not None:
            self.semantic = FrozenTableView(llm, d, hidden=llm.shape[1] // 2, mask_token=mask_token)
        self.graph = None
        if self.fusion == "view":
            self.graph = FrozenTableView(graph, d, hidden=None, mask_token=mask_token, trainable=graph_finetune)

    @property
    def names(self) -> list[str]:
        """The views the model encodes and scores apart, one [..., d] table each."""
        names = ["collaborative"]
        if self.semantic is not None:
            names.insert(0, "semantic")
        if self.fusion == "view":
            names.append("graph")
        return names

    def lookup(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """One [..., d] tensor per view, in the order of :attr:`names`."""
        views = [self.ids(ids)]
        if self.semantic is not None:
            views.insert(0, self.semantic(ids))
        if self.fusion == "view":
            views.append(self.graph(ids))
        return views

    def tables(self) -> list[torch.Tensor]:
        """[N + 1, d] per view (row 0 padding), for scoring every item, as :meth:`lookup` gives them. No
        copy of the id table where no gradient is wanted (a sparse table's gradient needs the lookup)."""
        every = torch.arange(self.num_items + 1, device=self.ids.weight.device)
        views = [self.ids(every) if torch.is_grad_enabled() else self.ids.weight[: self.num_items + 1]]
        if self.semantic is not None:
            views.insert(0, self.semantic.all_rows())
        if self.fusion == "view":
            views.append(self.graph.all_rows())
        return views


class FrozenTableView(nn.Module):
    """A fixed per-item table (LLM or graph embeddings) mapped to d dimensions.

    ``hidden``: width of a middle layer (two linear layers, as the LLM-ESR
    adapter), or None for one linear map. The table is a buffer unless
    ``trainable``. Output [..., d] for item ids of any shape.
    """

    def __init__(self, table: torch.Tensor, d: int, hidden: int | None, mask_token: bool, trainable: bool = False):
        super().__init__()
        self.num_items = table.shape[0] - 1
        if trainable:
            self.table = nn.Parameter(table.float().clone())
        else:
            self.register_buffer("table", table.float())
        width = table.shape[1]
        layers = [nn.Linear(width, hidden), nn.Linear(hidden, d)] if hidden else [nn.Linear(width, d)]
        self.adapter = nn.Sequential(*layers)
        # Only models that mask items own a mask vector (unused parameters would stall DDP).
        self.mask = nn.Parameter(torch.zeros(d)) if mask_token else None

    def all_rows(self, chunk: int = 65_536) -> torch.Tensor:
        """[N + 1, d]: every item mapped as :meth:`forward` maps it, ``chunk`` rows at a time: no gathered
        copy of the table, and when scoring (no gradient) no [N + 1, hidden] intermediate (at 921,393
        items the two were 2 GB at once)."""
        return torch.cat([self.adapter(self.table[lo : lo + chunk]) for lo in range(0, len(self.table), chunk)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # Map each distinct item once per call: batches repeat items a lot.
        unique, inverse = torch.unique(ids.clamp(max=self.num_items), return_inverse=True)
        rows = self.adapter(self.table[unique])[inverse]
        if self.mask is None:
            return rows
        is_mask = (ids > self.num_items).unsqueeze(-1)
        return torch.where(is_mask, self.mask.expand_as(rows), rows)
