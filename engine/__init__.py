"""engine package."""

from engine.cache import apply_defaults as _apply_cache_defaults

# before anything imports numba: one cache location however tradebot is started (engine/cache.py)
_apply_cache_defaults()
