"""The item–attribute heterograph: building, price buckets, save/load, statistics."""
