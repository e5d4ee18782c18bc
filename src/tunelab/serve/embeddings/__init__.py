"""POST /v1/embeddings: mean-pooled, L2-normalised sentence vectors from encoder models."""
