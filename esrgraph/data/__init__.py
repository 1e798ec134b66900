"""Reading real interaction and metadata formats into the canonical dataset."""
