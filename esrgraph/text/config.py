"""Settings of the text embeddings (`embed:`): the sentence model, the texts, PCA and similar users."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

from ..config_schema import field
from ..errors import ConfigError
from ..training.device import check_device

DEFAULT_ITEM_TEMPLATE = ["{title}.", "Brand: {brand}.", "Categories: {categories}.", "Price: {price}.", "{description}"]


@dataclass
class EmbedConfig:
    model: str = field("bundled", help="'bundled' (offline all-MiniLM-L6-v2), a model name or a local path")
    item_template: list[str] = field(
        factory=lambda: list(DEFAULT_ITEM_TEMPLATE),
        help="parts joined by spaces; a part naming a missing field is left out",
    )
    user_item_template: str = field("{title}", help="one training item in a user's text")
    user_separator: str = field("; ", help="joins a user's items, most recent first")
    max_tokens: int = field(256, min=8, help="texts are truncated to this many tokens (and the model's limit)")
    batch_size: int = field(16, min=1, help="texts per batch (16 measured fastest on a 2-core CPU)")
    device: str = field("auto", help="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field("auto", help="auto: bf16 where the chip has it")
    backend: Literal["auto", "torch", "openvino"] = field(
        "auto",
        help="what runs the sentence model: torch, or openvino on the CPU (the model converted locally and kept "
        "under runs/.cache/models; needs the fast-embed extra); auto: openvino on the CPU where it is installed, "
        "else torch",
    )
    pca_dim: int | None = field(None, min=1, help="size of the PCA item embeddings; default seq.hidden_size")
    users: Literal["auto", "text", "items", "none"] = field(
        "auto",
        help="user vectors (for similar users): text encodes each user's text of training-item titles; items "
        "averages the user's training items' vectors, most recent weighing most (no encoding); none: no user "
        "vectors or similar users; auto: text where the model self-distils from similar users, else none",
    )
    similar_users: int = field(10, min=1, help="K most similar users kept per user")
    similar_search: Literal["auto", "exact", "approximate"] = field(
        "auto",
        help="exact: every pair of users (cost grows with users squared); approximate: an inverted-file index "
        "(needs faiss-cpu); auto: exact up to 200,000 users, approximate above where faiss is installed",
    )
    block_size: int = field(1024, min=1, help="users per block in the exact similarity search (bounds memory)")
    cache: bool = field(True, help="reuse encodings of texts seen before (keyed by model and text)")

    def check(self, cfg) -> None:
        check_device(self.device, "embed.device")
        if self.pca_dim is None:
            self.pca_dim = cfg.seq.hidden_size
        for i, part in enumerate(self.item_template):
            check_template(part, f"embed.item_template[{i}]")
        check_template(self.user_item_template, "embed.user_item_template")


TEMPLATE_FIELDS = ("title", "brand", "categories", "price", "description")


def check_template(text: str, key: str) -> None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{key}: not a valid template ({exc})") from None
    for name in names:
        if name not in TEMPLATE_FIELDS:
            raise ConfigError(
                f"{key}: unknown field {{{name}}}; use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            )
