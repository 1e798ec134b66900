"""Item and user texts, sentence-model encoding, PCA and similar-user retrieval."""
