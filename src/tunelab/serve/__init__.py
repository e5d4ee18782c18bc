"""The OpenAI-compatible server: routes, auth, streaming, the models in memory, the request log."""
