"""Training: recipes for causal SFT and sequence classification."""
