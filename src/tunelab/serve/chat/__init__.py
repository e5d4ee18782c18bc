"""POST /v1/chat/completions: the chat template applied as in training, then generation (streamed or not)."""
