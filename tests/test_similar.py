"""Similar users: the approximate index finds the exact neighbours; user vectors from their items."""

import numpy as np
import pytest

from esrgraph.text.similar import approximate_top_k, similar_users, top_k_similar
from esrgraph.text.users import item_average_users
from tests.conftest import make_dataset


def clustered(n: int = 3000, d: int = 16, clusters: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    return (centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def test_the_approximate_search_finds_nearly_every_exact_neighbour_and_never_the_user_itself():
    pytest.importorskip("faiss")
    vectors = clustered()
    exact, exact_scores = top_k_similar(vectors, 10)
    found, scores = approximate_top_k(vectors, 10)
    assert found.shape == exact.shape and not (found == np.arange(len(found))[:, None]).any()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert recall > 0.95, recall
    assert np.all(np.diff(scores, axis=1) <= 1e-6) and np.allclose(scores[:, 0], exact_scores[:, 0], atol=1e-3)
    assert np.array_equal(similar_users(vectors, 10, "exact")[0], exact)


def test_a_users_vector_from_items_weighs_the_most_recent_most_and_reads_training_items_only():
    ds = make_dataset([[1, 2, 3, 4, 5], [3, 3, 1]], 5)
    items = np.eye(5, dtype=np.float32)  # item i's vector: the i-th axis
    users = item_average_users(ds, items)
    assert np.allclose(np.linalg.norm(users, axis=1), 1.0)
    first = users[0]  # training items 1, 2, 3 (4 and 5 are validation and test)
    assert first[2] > first[1] > first[0] > 0 and first[3] == first[4] == 0
    assert users[1][2] > 0 and users[1][0] == 0  # only item 3 is a training item of user 1
