"""POST /v1/entities (a tunelab extension): entity spans with scores from token-classification models."""
