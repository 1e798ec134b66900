"""The text cache appends: one new chunk per flush, old chunks never rewritten, a damaged chunk costs only its texts."""

import logging

import numpy as np

from esrgraph.text import cache as cache_module
from esrgraph.text.cache import EmbeddingCache, encode_cached, text_key


class CountingEncoder:
    """Encodes a text as [len, first character, 1]; records every text it encodes."""

    dim = 3

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts, batch_size, desc="", on_chunk=None):
        self.seen += list(texts)
        vectors = np.array([[len(t), ord(t[0]), 1.0] for t in texts], np.float32)
        for lo in range(0, len(texts), 2):  # chunks of two, as the real encoder hands them over
            idx = list(range(lo, min(lo + 2, len(texts))))
            on_chunk(idx, vectors[idx])
        return vectors


def test_each_flush_appends_a_chunk_and_leaves_the_earlier_ones_untouched(tmp_path):
    cache = EmbeddingCache(tmp_path, "model", dim=3)
    cache.put_many(["a", "b"], np.ones((2, 3), np.float32))
    cache.flush()
    [first] = cache.chunks()
    before = (first.read_bytes(), first.stat().st_mtime_ns)
    cache.put_many(["c"], np.full((1, 3), 2, np.float32))
    cache.flush()
    cache.flush()  # nothing new: no empty chunk
    assert len(cache.chunks()) == 2
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    again = EmbeddingCache(tmp_path, "model", dim=3)
    assert sorted(again.rows) == ["a", "b", "c"] and again.get("c").tolist() == [2, 2, 2]
    assert EmbeddingCache(tmp_path, "another model", dim=3).rows == {}


def test_a_damaged_chunk_re_encodes_only_its_texts(tmp_path, caplog):
    texts = ["apple", "banana", "cherry", "damson"]
    first = CountingEncoder()
    cache = EmbeddingCache(tmp_path, "model", dim=3, flush_seconds=-1)  # a chunk per encoded chunk
    expected = encode_cached(first, texts, 2, cache, "texts")
    chunks = cache.chunks()
    assert len(chunks) == 2 and first.seen == texts
    chunks[1].write_bytes(chunks[1].read_bytes()[:50])
    second = CountingEncoder()
    with caplog.at_level(logging.WARNING):
        again = encode_cached(second, texts + ["apple"], 2, EmbeddingCache(tmp_path, "model", dim=3), "texts")
    assert f"{chunks[1]}: damaged text cache" in caplog.text
    assert second.seen == ["cherry", "damson"]  # the texts of the damaged chunk, no others
    assert np.array_equal(again, np.vstack([expected, expected[:1]]))
    assert chunks[0].exists() and not chunks[1].exists()


def test_many_chunks_are_merged_into_one_on_opening(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "MAX_CHUNKS", 3)
    cache = EmbeddingCache(tmp_path, "model", dim=3)
    for i in range(5):
        cache.put_many([f"k{i}"], np.full((1, 3), i, np.float32))
        cache.flush()
    assert len(cache.chunks()) == 5
    merged = EmbeddingCache(tmp_path, "model", dim=3)
    assert len(merged.chunks()) == 1 and sorted(merged.rows) == [f"k{i}" for i in range(5)]
    assert EmbeddingCache(tmp_path, "model", dim=3).get("k4").tolist() == [4, 4, 4]


def test_the_single_file_of_earlier_versions_is_still_read(tmp_path):
    from esrgraph.artifacts import save_arrays

    cache = EmbeddingCache(tmp_path, "model", dim=3)
    save_arrays(cache.legacy, keys=np.array([text_key("old")], dtype="U32"), vectors=np.ones((1, 3), np.float32))
    encoder = CountingEncoder()
    encode_cached(encoder, ["old", "new"], 2, EmbeddingCache(tmp_path, "model", dim=3), "texts")
    assert encoder.seen == ["new"]
