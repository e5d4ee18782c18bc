"""POST /v1/classifications (a tunelab extension): labels with scores from classifier models."""
