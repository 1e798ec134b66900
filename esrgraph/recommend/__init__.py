"""Recommending: top items for known users and new histories from a trained run (:mod:`.recommender`)."""
