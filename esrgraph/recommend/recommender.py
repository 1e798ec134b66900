"""Recommendations from a trained run: top items for known users, for new histories, or scores of given items.

A :class:`Recommender` holds one trained model (a ``seq`` stage's
``model-seed<S>.pt``, read without DGL or any other stage) and the prepared
dataset's ids, titles and histories. Users and items are named by their
source ids; every history is ranked as evaluation ranks it (the model's user
vector against every item's vectors), in batches of users and blocks of items (no
[users, catalogue] score matrix: a top k is kept across blocks).

Known users are ranked from their whole history (the validation and test
items included: recommending, unlike evaluating, uses everything known).
New histories are lists of source item ids in time order; ids the model does
not know are left out and reported, never dropped without a word. A history
with no item the model knows (empty, or every id unknown) gives the model
nothing to work from: it is ranked by popularity (interactions per item, the
score), every row marked ``"fallback": "popularity"``, with a warning.
Arguments are checked as the command line checks its options (``k`` an
integer >= 1, ids as lists, not a bare string), raising :class:`ArgumentError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Dataset
from ..errors import ArgumentError, EsrError
from ..eval.blocks import COLUMNS_PER_PASS, history_pairs, top_k_in_blocks
from ..seq.model import SeqRecommender
from .index import ApproximateIndex

log = logging.getLogger(__name__)
FALLBACK = "popularity"  # how a history with no known item is ranked, named in each of its rows


@dataclass
class Ranked:
    """One recommended item; ``fallback`` names the ranking used instead of the model's, if any."""

    item: str
    score: float
    title: str | None
    fallback: str | None = None

    def as_dict(self) -> dict:
        row = {"item": self.item, "score": round(self.score, 6), "title": self.title}
        if self.fallback:
            row["fallback"] = self.fallback
        return row


@dataclass
class Unknown:
    """Item ids of a history that the model does not know (left out of it)."""

    count: int
    examples: list[str]


class Recommender:
    """Ranks items for users with ``model`` over ``dataset``'s catalogue (see the module notes)."""

    def __init__(
        self,
        model: SeqRecommender,
        dataset: Dataset,
        max_length: int,
        batch_size: int = 1024,
        approximate: bool = False,
    ):
        self.model = model.eval()
        self.dataset = dataset
        self.max_length = max_length - model.appended_tokens
        self.batch_size = batch_size
        self.device = model.input_device
        self.item_index = {item: i + 1 for i, item in enumerate(dataset.item_ids)}
        self.user_index = {user: u for u, user in enumerate(dataset.user_ids)}
        self.tail_max_length = int(dataset.stats.get("groups", {}).get("tail_user_max_length", 0))
        with torch.no_grad():
            self.tables = model.item_tables()
        self.popularity = torch.from_numpy(dataset.item_popularity.astype(np.float32)).to(self.device)
        self.popularity[0] = -float("inf")
        # approximate top-k for large catalogues (exact ranking stays the default)
        self.index = ApproximateIndex(self.tables) if approximate else None

    # ------------------------------------------------------------------ public

    def recommend(
        self,
        history: Sequence[str],
        k: int = 10,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
        warn: bool = True,
    ) -> list[dict]:
        """The top ``k`` items for a new user whose history is ``history`` (source item ids, oldest first);
        unknown ids are left out, and a history with no known item ranked by popularity (rows marked
        ``"fallback": "popularity"``), each with a warning unless ``warn`` is false."""
        history = id_list("history", history)
        options = checked_options(k, exclude_seen, candidates)
        items, unknown = self.known_items(history)
        if unknown.count and warn:
            log.warning(
                "%d of %d history items are unknown to the model and were left out (e.g. %s)",
                unknown.count,
                len(history),
                ", ".join(unknown.examples),
            )
        return [r.as_dict() for r in self._rank([items], None, *options, warn=warn)[0]]

    def recommend_users(
        self, user_ids: Sequence[str], k: int = 10, exclude_seen: bool = True, candidates: Sequence[str] | None = None
    ) -> list[list[dict]]:
        """The top ``k`` items for each known user (source user ids), in the order given."""
        options = checked_options(k, exclude_seen, candidates)
        users = self.users(id_list("user_ids", user_ids, "user"))
        out: list[list[dict]] = []
        for lo in range(0, len(users), self.batch_size):
            part = users[lo : lo + self.batch_size]
            histories = [self.dataset.sequence(u) for u in part]
            out += [[r.as_dict() for r in row] for row in self._rank(histories, part, *options)]
        return out

    def recommend_all(
        self, k: int = 10, exclude_seen: bool = True, candidates: Sequence[str] | None = None
    ) -> Iterator[tuple[str, list[Ranked]]]:
        """(user id, top ``k``) for every known user, streamed batch by batch (users of similar lengths together)."""
        options = checked_options(k, exclude_seen, candidates)
        order = np.argsort(self.dataset.lengths(), kind="stable")
        for lo in range(0, len(order), self.batch_size):
            part = order[lo : lo + self.batch_size]
            rows = self._rank([self.dataset.sequence(u) for u in part], part, *options)
            for user, row in zip(part, rows):
                yield self.dataset.user_ids[user], row

    def score(self, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """The model's scores of ``items`` (source ids) for a user whose history is ``history``. A history
        with no known item has no model score (:meth:`recommend` ranks it by popularity): an error."""
        history, items = id_list("history", history), id_list("items", items)
        known, _ = self.known_items(history)
        if not len(known):
            raise ArgumentError(
                "history: no item the model knows, so the model has no score for this user "
                "(recommend() ranks such a history by popularity)"
            )
        ids = torch.tensor([self.item(i) for i in items], dtype=torch.long, device=self.device)
        with torch.no_grad():
            vectors = self._vectors([known], None)
            return self.model.score_items(vectors, ids.unsqueeze(0))[0].tolist()

    # ------------------------------------------------------------------ ids

    def known_items(self, history: Sequence[str]) -> tuple[np.ndarray, Unknown]:
        """The canonical ids of the history's known items, and what was left out."""
        known = [self.item_index.get(str(i)) for i in history]
        missing = [str(i) for i, c in zip(history, known) if c is None]
        return np.array([c for c in known if c is not None], dtype=np.int64), Unknown(len(missing), missing[:5])

    def item(self, item_id: str) -> int:
        try:
            return self.item_index[str(item_id)]
        except KeyError:
            raise EsrError(
                f"item {item_id!r} is not in the model's catalogue ({len(self.item_index):,} items)"
            ) from None

    def users(self, user_ids: Sequence[str]) -> np.ndarray:
        missing = [str(u) for u in user_ids if str(u) not in self.user_index]
        if missing:
            raise EsrError(
                f"{len(missing)} user id(s) unknown to the dataset (e.g. {', '.join(missing[:5])}); "
                "rank a new user's history with --history-file"
            )
        return np.array([self.user_index[str(u)] for u in user_ids], dtype=np.int64)

    # ------------------------------------------------------------------ ranking

    @torch.no_grad()
    def _vectors(self, histories: list[np.ndarray], users: np.ndarray | None) -> torch.Tensor:
        cut = [h[-self.max_length :] for h in histories]
        lengths = np.array([len(h) for h in cut], dtype=np.int64)
        items = np.zeros((len(cut), max(int(lengths.max()), 1)), dtype=np.int64)
        for row, h in enumerate(cut):
            items[row, : len(h)] = h
        items_t, lengths_t = torch.from_numpy(items).to(self.device), torch.from_numpy(lengths).to(self.device)
        if users is not None:
            return self.model.user_vectors(items_t, lengths_t, torch.from_numpy(users).to(self.device))
        groups = torch.from_numpy((lengths <= self.tail_max_length).astype(np.int64)).to(self.device)
        return self.model.user_vectors(items_t, lengths_t, groups=groups)

    @torch.no_grad()
    def _rank(
        self,
        histories: list[np.ndarray],
        users: np.ndarray | None,
        k: int,
        exclude_seen: bool,
        candidates: Sequence[str] | None,
        warn: bool = True,
    ) -> list[list[Ranked]]:
        known = [len(h) > 0 for h in histories]
        if self.index is not None and candidates is None and all(known):
            return self._rank_approximately(histories, users, k, exclude_seen)
        if not all(known) and warn:  # nothing known about these users: the most popular items, as a cold start
            log.warning(
                "%d histories hold no item the model knows: ranked by popularity (rows marked fallback)",
                len(known) - sum(known),
            )
        num_columns = self.tables.shape[0]
        score_block = self._block_scorer(histories, users, known)
        excluded = history_pairs(histories if exclude_seen else [], self.device)
        allowed = None
        if candidates is not None:
            allowed = torch.zeros(num_columns, dtype=torch.bool, device=self.device)
            allowed[torch.tensor([self.item(c) for c in candidates], device=self.device)] = True
        values, indices = top_k_in_blocks(
            score_block, num_columns, min(k, num_columns - 1), excluded, COLUMNS_PER_PASS, allowed
        )
        return [
            self._rows(row_values, row_indices, None if ok else FALLBACK)
            for row_values, row_indices, ok in zip(values.tolist(), indices.tolist(), known)
        ]

    def _block_scorer(self, histories: list[np.ndarray], users: np.ndarray | None, known: list[bool]):
        """Scores of a block of items for every row: the model's for histories with a known item, the
        popularity for the rest."""
        rows = [i for i, ok in enumerate(known) if ok]
        cold = torch.tensor([i for i, ok in enumerate(known) if not ok], dtype=torch.long, device=self.device)
        vectors = None
        if rows:
            vectors = self._vectors([histories[i] for i in rows], users[rows] if users is not None else None)
        rows_t = torch.tensor(rows, dtype=torch.long, device=self.device)

        def score_block(lo: int, hi: int) -> torch.Tensor:
            if not len(cold):
                return self.model.score_all(vectors, self.tables, columns=slice(lo, hi))
            scores = torch.empty((len(known), hi - lo), device=self.device)
            if rows:
                scores[rows_t] = self.model.score_all(vectors, self.tables, columns=slice(lo, hi))
            scores[cold] = self.popularity[lo:hi]
            return scores

        return score_block

    def _rank_approximately(
        self, histories: list[np.ndarray], users: np.ndarray | None, k: int, exclude_seen: bool
    ) -> list[list[Ranked]]:
        """Top-k through the approximate index: enough extra hits fetched to leave out the seen items."""
        extra = max(len(set(h.tolist())) for h in histories) if exclude_seen else 0
        scores, ids = self.index.search(self._vectors(histories, users), k + extra)
        out = []
        for history, row_scores, row_ids in zip(histories, scores, ids):
            seen = set(history.tolist()) if exclude_seen else set()
            kept = [(float(sc), int(i)) for sc, i in zip(row_scores, row_ids) if i > 0 and i not in seen][:k]
            out.append(self._rows([sc for sc, _ in kept], [i for _, i in kept]))
        return out

    def _rows(self, values: list[float], indices: list[int], fallback: str | None = None) -> list[Ranked]:
        rows = []
        for score, index in zip(values, indices):
            if not np.isfinite(score) or index == 0:
                break  # fewer allowed items than k
            meta = self.dataset.item_meta[index - 1] or {}
            rows.append(Ranked(self.dataset.item_ids[index - 1], float(score), meta.get("title"), fallback))
        return rows


def checked_options(k: object, exclude_seen: object, candidates: object) -> tuple[int, bool, list[str] | None]:
    """The ranking options, checked as the command line checks -k, --exclude-seen and --candidates."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ArgumentError(f"k: expected an integer >= 1 (as -k), got {k!r}")
    if not isinstance(exclude_seen, bool):
        raise ArgumentError(f"exclude_seen: expected True or False, got {exclude_seen!r}")
    if candidates is not None:
        candidates = id_list("candidates", candidates)
        if not candidates:
            raise ArgumentError("candidates: an empty list leaves nothing to rank; give item ids, or None for all")
    return int(k), exclude_seen, candidates


def id_list(name: str, ids: object, what: str = "item") -> list[str]:
    """Source ids as strings. A bare string is refused: it would be read as one id per character."""
    if isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Iterable):
        raise ArgumentError(f"{name}: expected a list of {what} ids, got {type(ids).__name__}")
    out = []
    for i, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
            raise ArgumentError(f"{name}[{i}]: {what} ids are strings or integers, got {value!r}")
        out.append(str(value))
    return out


def load_model_and_dataset(seq_dir: Path, dataset_dir: Path, seed: int | None, device: str):
    """The trained model of ``seed`` (the smallest trained seed by default) and the dataset it was trained on."""
    from ..data.store import load_dataset
    from ..seq.store import load_model, trained_seeds

    seeds = trained_seeds(seq_dir)
    if not seeds:
        raise EsrError(f"{seq_dir}: holds no trained model; run esr train-seq with this config first")
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise EsrError(f"--seed {seed}: no model trained with that seed; trained seeds: {', '.join(map(str, seeds))}")
    return load_model(seq_dir, seed, device), load_dataset(dataset_dir), seed
