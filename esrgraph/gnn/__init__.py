"""Relation-aware GAT encoder, augmentations, contrastive loss and the pretraining loop."""
