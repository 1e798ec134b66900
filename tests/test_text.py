import numpy as np
import pytest

from esrgraph.data.dataset import build_dataset
from esrgraph.errors import EsrError
from esrgraph.text.reduce import pca
from esrgraph.text.similar import top_k_similar
from esrgraph.text.templates import item_text, item_texts, user_texts

PARTS = ["{title}.", "Brand: {brand}.", "Categories: {categories}.", "Price: {price}."]


def test_item_text_leaves_missing_fields_out():
    meta = {"title": "Lip balm", "brand": None, "categories": ["Beauty", "Lips"], "price": None, "description": None}
    assert item_text(meta, PARTS, True, "fallback", 1000) == "Lip balm. Categories: Beauty > Lips."
    assert item_text(meta, PARTS, False, "fallback", 1000) == "Lip balm. Categories: Beauty, Lips."
    assert item_text(None, PARTS, True, "Item 7", 1000) == "Item 7"
    assert item_text({"title": "x" * 50}, ["{title}"], True, "", 20) == "x" * 20


def test_html_entities_are_unescaped():
    assert item_text({"brand": "L&#39;Oreal Paris"}, ["Brand: {brand}."], True, "", 100) == "Brand: L'Oreal Paris."


def test_user_text_uses_training_items_only(tiny_config):
    ds = build_dataset(tiny_config().dataset)
    items = item_texts(ds, ["{title}"], True, 64)
    users = user_texts(ds, "{title}", "; ", True, 64, items)
    for u in range(ds.num_users):
        train_titles = [items[i - 1] for i in ds.train_sequence(u)]
        assert users[u] == "; ".join(reversed(train_titles))  # most recent first
        for held_out in (ds.valid_target(u), ds.test_target(u)):
            if ds.item_ids[held_out - 1] not in [ds.item_ids[i - 1] for i in ds.train_sequence(u)]:
                assert items[held_out - 1] not in users[u]


def test_pca_matches_svd_up_to_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10)) * np.arange(10, 0, -1)
    got = pca(x, 3)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    want = centred @ vt[:3].T
    for j in range(3):
        assert np.allclose(np.abs(got[:, j]), np.abs(want[:, j]), atol=1e-4)
    assert np.all(np.diff(got.var(0)) < 0)  # components in order of variance
    assert np.array_equal(pca(x, 3), got)  # deterministic
    blockwise = pca(x, 3, block=7)  # accumulated 7 rows at a time: the same projection
    assert blockwise.dtype == np.float32 and np.allclose(blockwise, got, atol=1e-5)
    with pytest.raises(EsrError, match="larger than the text embedding size"):
        pca(x, 11)


@pytest.mark.parametrize("block", [1, 3, 1000])
def test_top_k_similar_matches_brute_force(block):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(17, 5)).astype(np.float32)
    idx, scores = top_k_similar(x, 4, block_size=block)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1, kind="stable")[:, :4]
    assert np.array_equal(idx, want)
    assert np.allclose(scores, np.take_along_axis(sims, want, 1), atol=1e-5)
    assert not (idx == np.arange(17)[:, None]).any()


def test_top_k_is_capped_by_user_count():
    idx, _ = top_k_similar(np.eye(3, dtype=np.float32), 10)
    assert idx.shape == (3, 2)
