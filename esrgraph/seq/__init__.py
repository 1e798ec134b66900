"""Sequential recommenders: backbones, the LLM-ESR dual-view model, self-distillation, training."""
