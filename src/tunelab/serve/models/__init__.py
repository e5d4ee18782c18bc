"""GET /v1/models, and the admin routes that load and unload models in a running server."""
