"""Settings of the dataset (`dataset:`): where the data is, how it is read, joined and split."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Literal

from ..config_schema import check_folder_name, field
from ..errors import ConfigError

InteractionFormat = Literal["auto", "inter", "sequences", "json", "csv", "tsv", "amazon-reviews", "amazon-reviews-2023"]
MetadataFormat = Literal["auto", "json", "jsonl", "csv", "tsv", "amazon-2014", "amazon-2023"]
INTERACTION_FORMATS = typing.get_args(InteractionFormat)
METADATA_FORMATS = typing.get_args(MetadataFormat)
BUNDLED_PREFIX = "bundled:"


@dataclass
class InteractionsConfig:
    path: str = field(BUNDLED_PREFIX + "amazon-scientific/interactions.json.gz", help="interaction file")
    format: InteractionFormat = field(
        "auto", help="file format (see docs/data-formats.md); auto guesses from name and content"
    )
    user_column: str | None = field(
        None,
        help="csv/tsv: user column (default: the first named user, user_id, userId, reviewerID, ...); "
        "amazon-reviews: reviewerID; amazon-reviews-2023: user_id",
    )
    item_column: str | None = field(
        None,
        help="csv/tsv: item column (default: the first named item, item_id, movieId, parent_asin, asin, ...); "
        "amazon-reviews: asin; amazon-reviews-2023: parent_asin",
    )
    time_column: str | None = field(
        None,
        help="csv/tsv: time column (default: the first named timestamp, time, date, ...); "
        "amazon-reviews: unixReviewTime; amazon-reviews-2023: timestamp",
    )
    separator: str | None = field(
        None,
        help="splits the fields of a line, e.g. '::' or ';'; null: by format (csv ',', tsv tab, "
        "inter/sequences any whitespace); auto reads a file with a separator set as a table",
    )
    encoding: str = field("utf-8", help="text encoding of the file, e.g. latin-1")


@dataclass
class MetadataFields:
    """Which source field holds each attribute (null: the source has none)."""

    title: str | None = field("title", help="source field of the item title")
    brand: str | None = field("brand", help="source field of the brand")
    categories: str | None = field("categories", help="source field of the categories (a list, path or string)")
    price: str | None = field("price", help="source field of the price (numbers or strings such as '$5.99')")
    description: str | None = field("description", help="source field of the description")


@dataclass
class MetadataConfig:
    path: str | None = field(BUNDLED_PREFIX + "amazon-scientific/items.json.gz", help="item metadata file")
    format: MetadataFormat = field(
        "auto", help="file format (see docs/data-formats.md); auto guesses from name and content"
    )
    key: str | None = field(
        None,
        help="jsonl/csv/tsv: field holding the item id (default: jsonl and amazon-2014 asin, amazon-2023 "
        "parent_asin, csv/tsv the first column; json objects are keyed by id)",
    )
    separator: str | None = field(None, help="csv/tsv: splits the fields of a line, e.g. '::'; null: ',' or tab")
    columns: list[str] | None = field(
        None, help="csv/tsv without a header row: the name of each column in order, e.g. [item_id, title, genres]"
    )
    encoding: str = field("utf-8", help="text encoding of the file, e.g. latin-1")
    fields: MetadataFields = field(factory=MetadataFields)
    category_separator: str | None = field(",", help="splits a categories string; null keeps it whole")
    category_pattern: str | None = field(
        None,
        help="a regular expression that splits a categories string instead of category_separator, "
        "e.g. ',(?=\\S)' where names hold ', ' (\"Tapes, Adhesives & Sealants\")",
    )
    categories_are_path: bool | Literal["auto"] = field(
        "auto",
        help="categories are a path from the top level down (true) or a flat list of tags (false); "
        "auto detects which from the data",
    )


@dataclass
class JoinConfig:
    key_type: Literal["auto", "int", "str"] = field("auto", help="how ids are compared")
    offset: int = field(0, help="metadata key = interaction item id + offset (integer ids only)")
    check_offset: bool = field(
        True, help="stop when another offset near the configured one joins clearly more items (integer ids)"
    )


@dataclass
class GroupsConfig:
    """Tail/head split: a Pareto split by share unless a fixed threshold is set."""

    tail_user_share: float = field(0.8, gt=0.0, lt=1.0, help="share of users (shortest histories) that are tail")
    tail_item_share: float = field(0.8, gt=0.0, lt=1.0, help="share of items (least popular) that are tail")
    tail_user_max_length: int | None = field(None, min=1, help="fixed: tail if history length <= this")
    tail_item_max_popularity: int | None = field(None, min=1, help="fixed: tail if interactions <= this")


@dataclass
class ColdItemsConfig:
    """Items without interactions: kept in the catalogue, or held out to measure how they are ranked."""

    keep_unseen: bool = field(
        False, help="keep metadata items nobody interacted with, as cold items after the interacted ones"
    )
    holdout_share: float = field(
        0.0,
        min=0.0,
        lt=1.0,
        help="cold-item protocol: share of interacted items held out entirely (every "
        "interaction with them removed from the histories) and ranked afterwards as cold items; 0: off",
    )
    holdout_seed: int = field(0, min=0, help="cold-item protocol: seed of the held-out items' draw")


@dataclass
class DatasetConfig:
    name: str = field("amazon-scientific", help="names the run directory and the reports")
    interactions: InteractionsConfig = field(factory=InteractionsConfig)
    metadata: MetadataConfig = field(factory=MetadataConfig)
    join: JoinConfig = field(factory=JoinConfig)
    duplicates: Literal["keep", "drop_consecutive", "drop"] = field(
        "drop_consecutive",
        help="a user's repeated interactions with one item: drop_consecutive removes a row repeating the "
        "item right before it (no sequential signal, and it inflates the item's popularity) and keeps "
        "later repeats (real re-consumption); drop keeps each item's first interaction only; keep keeps every row",
    )
    min_user_interactions: int = field(3, min=3, help="users with fewer are dropped (leave-one-out needs 3)")
    groups: GroupsConfig = field(factory=GroupsConfig)
    cold_items: ColdItemsConfig = field(factory=ColdItemsConfig)

    def check(self, cfg) -> None:
        check_folder_name("dataset.name", self.name)
        if self.join.offset and self.join.key_type == "str":
            raise ConfigError(
                "dataset.join.offset: an id offset needs integer ids; set dataset.join.key_type to int or auto"
            )
        pattern = self.metadata.category_pattern
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"dataset.metadata.category_pattern: {pattern!r} is not a regular expression ({exc})"
                ) from None
