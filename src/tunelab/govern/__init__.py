"""Governance: who may call the server (API keys, rate limits); later users, roles, lineage and model cards."""

from tunelab.govern.keys import ApiKey, RateLimiter, authenticate, create_key, list_keys, revoke_key

__all__ = ["ApiKey", "RateLimiter", "authenticate", "create_key", "list_keys", "revoke_key"]
