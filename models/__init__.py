"""models package."""

# engine sets NUMBA_CACHE_DIR's default before numba is first imported (engine/cache.py)
import engine as _engine  # noqa: F401
