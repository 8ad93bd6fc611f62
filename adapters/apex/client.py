"""The one place that imports ``apexomni`` (ApeX Omni's official connector).

- :func:`load_apexomni` applies the sympy ``igcdex`` shim and imports the package. apexomni 3.4.2
  is installed with ``--no-deps`` beside sympy >= 1.13 (see ``docs/apex.md``), where ``igcdex``
  moved to ``sympy.core.intfunc``; the shim puts it back where apexomni looks for it. Importing
  this module is cheap: apexomni (about a second: web3, the zkLink library) is imported on first
  use only.
- :func:`public_client` / :func:`private_client` build ``HttpPublic`` / ``HttpPrivateSign`` for a
  base URL: :data:`MAIN_NET`, :data:`TEST_NET` or any other (a local venue,
  ``http://127.0.0.1:PORT``). Credentials come from the environment or ``.env``
  (:func:`credentials_from_env`) and are never logged.
- apexomni never raises on API errors: it returns the JSON body whatever the status. :func:`check`
  turns an Apex error reply ``{"code", "msg", "key"}`` into an ``engine.errors`` class, and
  :class:`ApexClient` also maps ``requests`` exceptions, so callers only ever see:

  ============================ ========================================================
  ``TransientVenueError``      timeout, 5xx, 429 rate limit, non-JSON reply: retry with backoff
                               (``retry_after`` when the venue said how long)
  ``OrderRejected``            size, price, balance, reduce-only...: change the order
  ``DuplicateClientId``        (an ``OrderRejected``) the clientId exists: look it up
  ``VenueStateUnknown``        an order request whose reply was lost (timeout, dropped
                               connection, 5xx body lost): reconcile before trading again
  ``VenueUnreachable``         refused / DNS / bad URL: the message names the URL
  ``VenueError``               anything else (bad API key or zk seeds, unknown symbol...)
  ============================ ========================================================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import (
    DuplicateClientId,
    OrderRejected,
    TransientVenueError,
    VenueError,
    VenueStateUnknown,
    VenueUnreachable,
)

logger = logging.getLogger(__name__)

# Mirrors of apexomni.constants (tests check they still agree), so that choosing a URL does not
# import apexomni.
MAIN_NET = "https://omni.apex.exchange"
TEST_NET = "https://qa.omni.apex.exchange"
NETWORKS = {"main": MAIN_NET, "test": TEST_NET}
DEFAULT_TIMEOUT_S = 10.0

ENV_KEY, ENV_SECRET, ENV_PASSPHRASE, ENV_SEEDS = (
    "APEX_API_KEY", "APEX_API_SECRET", "APEX_API_PASSPHRASE", "APEX_ZK_SEEDS",
)


def load_apexomni() -> Any:
    """Apply the sympy shim and import ``apexomni`` (with its signing modules); return it."""
    import sympy.core.numbers as _numbers

    if not hasattr(_numbers, "igcdex"):
        from sympy.core.intfunc import igcdex

        _numbers.igcdex = igcdex
    import apexomni
    import apexomni.http_private_sign
    import apexomni.http_public

    return apexomni


def zklink_sdk() -> Any:
    """apexomni's bundled zkLink signer module (``ZkLinkSigner``, ``verify_musig``...)."""
    load_apexomni()
    from apexomni import zklink_sdk as sdk

    return sdk


# -- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApexCredentials:
    """API key, secret and passphrase (REST HMAC) and the zk seeds ("Omni key") for orders."""

    key: str
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)
    zk_seeds: str = field(default="", repr=False)

    def api_key_credentials(self) -> dict[str, str]:
        return {"key": self.key, "secret": self.secret, "passphrase": self.passphrase}


def _dotenv(path: Path) -> dict[str, str]:
    from engine.config import _load_dotenv  # the project's one .env reader

    return _load_dotenv(path)


def credentials_from_env(env: Mapping[str, str] | None = None,
                         dotenv: Path | None = Path(".env")) -> ApexCredentials | None:
    """``APEX_API_KEY``/``APEX_API_SECRET``/``APEX_API_PASSPHRASE`` (+ ``APEX_ZK_SEEDS``) from the
    environment, falling back to ``.env`` in the working directory; ``None`` when no key is set.

    Raises:
        VenueError: a key is set but the secret or passphrase is missing (names the variable).
    """
    merged: dict[str, str] = {}
    if dotenv is not None:
        merged.update(_dotenv(dotenv))
    merged.update(os.environ if env is None else env)
    key = merged.get(ENV_KEY, "")
    if not key:
        return None
    missing = [n for n in (ENV_SECRET, ENV_PASSPHRASE) if not merged.get(n)]
    if missing:
        raise VenueError(
            f"{ENV_KEY} is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not; export them or add them to .env (the API page of the ApeX Omni web UI shows all "
            "three)"
        )
    return ApexCredentials(key, merged[ENV_SECRET], merged[ENV_PASSPHRASE],
                           merged.get(ENV_SEEDS, ""))


# -- factories ---------------------------------------------------------------------------------


def _endpoint(base_url: str) -> str:
    # apexomni keeps a trailing '/' (it strips it, then overwrites the result): '//api/v3/...'
    url = NETWORKS.get(base_url, base_url).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise VenueUnreachable(
            f"Apex base URL {base_url!r} is not an http(s) URL; use 'main', 'test', {MAIN_NET}, "
            f"{TEST_NET} or a local venue such as http://127.0.0.1:8888"
        )
    return url


def public_client(base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """``apexomni.http_public.HttpPublic`` for ``base_url`` (``main``/``test`` or a URL)."""
    load_apexomni()
    from apexomni.http_public import HttpPublic

    return HttpPublic(_endpoint(base_url), request_timeout=timeout)


def private_client(base_url: str, credentials: ApexCredentials | None = None,
                   timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """``apexomni.http_private_sign.HttpPrivateSign`` for ``base_url`` with ``credentials``
    (default: :func:`credentials_from_env`).

    Raises:
        VenueError: no credentials (says which variables to set).
    """
    creds = credentials or credentials_from_env()
    if creds is None:
        raise VenueError(
            f"no Apex API credentials: set {ENV_KEY}, {ENV_SECRET}, {ENV_PASSPHRASE} and "
            f"{ENV_SEEDS} in the environment or .env (see docs/apex.md)"
        )
    load_apexomni()
    from apexomni.constants import NETWORKID_OMNI_MAIN_ARB, NETWORKID_OMNI_TEST_BNB
    from apexomni.http_private_sign import HttpPrivateSign

    url = _endpoint(base_url)
    network = NETWORKID_OMNI_TEST_BNB if url == TEST_NET else NETWORKID_OMNI_MAIN_ARB
    return HttpPrivateSign(url, network_id=network, zk_seeds=creds.zk_seeds or None, zk_l2Key="",
                           api_key_credentials=creds.api_key_credentials(),
                           request_timeout=timeout)


# -- reply checking ----------------------------------------------------------------------------

# Keys (Apex's and the local venue's) by the action the caller must take.
_TRANSIENT_KEYS = {"RATE_LIMIT", "TOO_MANY_REQUESTS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE",
                   "SYSTEM_BUSY"}
_DUPLICATE_KEYS = {"ORDER_CLIENT_ID_DUPLICATE", "DUPLICATE_CLIENT_ID"}
_AUTH_KEYS = {"SIGNATURE_INVALID", "API_KEY_INVALID", "PASSPHRASE_INVALID", "TIMESTAMP_EXPIRED",
              "L2_SIGNATURE_INVALID"}
_REJECT_WORDS = ("ORDER", "PRICE", "SIZE", "BALANCE", "MARGIN", "REDUCE_ONLY", "POSITION",
                 "LIMIT_FEE", "LEVERAGE")


def _retry_after(resp: Mapping[str, Any]) -> float | None:
    for holder in (resp, resp.get("detail") or {}):
        if isinstance(holder, Mapping):
            v = holder.get("retryAfter", holder.get("retry_after"))
            if v is not None:
                try:
                    return float(v)
                except (TypeError, ValueError):
                    return None
    return None


def check(resp: Any, action: str) -> Any:
    """Return ``resp["data"]`` of a successful Apex reply; raise the matching engine error.

    Args:
        resp: what an apexomni method returned (a dict; ``None`` from ``get_account_v3`` on error).
        action: what was being done, for the message (``"create order BTC-USDT"``).
    """
    if resp is None:
        raise VenueError(f"{action}: the venue answered with an error (apexomni returned None)")
    if not isinstance(resp, Mapping):
        raise VenueError(f"{action}: unexpected reply {str(resp)[:200]!r}")
    if "code" not in resp or (resp.get("code") in (0, "0", 200, "200") and "data" in resp):
        if "data" not in resp:
            raise VenueError(f"{action}: reply without 'data': {str(resp)[:200]!r}")
        return resp["data"]
    code, msg, key = resp.get("code"), str(resp.get("msg", "")), str(resp.get("key", "") or "")
    try:
        icode = int(code)
    except (TypeError, ValueError):
        icode = -1
    what = f"{action}: venue error {code} {key or '-'}: {msg}"
    ukey = key.upper()
    if ukey in _TRANSIENT_KEYS or icode == 429 or 500 <= icode <= 599:
        ra = _retry_after(resp)
        hint = f"; retry after {ra:g} s" if ra is not None else "; retry with backoff"
        raise TransientVenueError(what + hint, retry_after=ra)
    if ukey in _DUPLICATE_KEYS:
        raise DuplicateClientId(
            what + "; an order with this clientId exists already: look it up "
            "(order-by-client-order-id) instead of placing it again")
    if ukey in _AUTH_KEYS or icode == 20006:
        raise VenueError(
            what + f"; check {ENV_KEY}, {ENV_SECRET}, {ENV_PASSPHRASE} (REST signature), "
            f"{ENV_SEEDS} (order signature) and that the base URL is the network the keys "
            "belong to")
    if any(w in ukey for w in _REJECT_WORDS) or icode == 3:
        raise OrderRejected(what + "; change the order (size, price, side or balance) before "
                                   "sending it again")
    raise VenueError(what)


def _unreachable_reason(exc: BaseException) -> str | None:
    """The reason when ``exc`` means no connection was ever made (so nothing was sent)."""
    import requests
    import urllib3.exceptions as u3

    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return f"invalid URL ({exc})"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, getattr(u3, "NameResolutionError", ())):  # urllib3 >= 2
            return "the host name does not resolve (DNS)"
        if isinstance(e, u3.NewConnectionError):
            text = str(e).lower()
            if "refused" in text:
                return "connection refused"
            if "name or service" in text or "nodename" in text or "resolution" in text:
                return "the host name does not resolve (DNS)"
            return "cannot connect"
        if isinstance(e, u3.MaxRetryError) and e.reason is not None:
            todo.append(e.reason)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
    return None


def map_exception(exc: BaseException, action: str, base_url: str,
                  places_order: bool = False) -> VenueError:
    """Translate an exception raised by an apexomni call into an engine error (not raised)."""
    import requests

    reason = _unreachable_reason(exc)
    if reason is not None:
        return VenueUnreachable(
            f"{action}: cannot reach the Apex venue at {base_url}: {reason}; check the base URL "
            "(main, test or a local venue's http://127.0.0.1:PORT), that the venue is running "
            "(`tradebot venue --data FILE`) and the network")
    lost = ("the order may have been accepted: reconcile (open orders, fills, "
            "order-by-client-order-id) before trading again")
    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else \
            f"lost the connection ({type(exc).__name__})"
        if places_order:
            return VenueStateUnknown(f"{action}: request to {base_url} {kind}; {lost}")
        return TransientVenueError(f"{action}: request to {base_url} {kind}; retry with backoff")
    name = type(exc).__name__
    if name == "FailedRequestError":  # apexomni: the body was not JSON (a proxy error page...)
        text = getattr(exc, "message", str(exc))[:200]
        if places_order:
            return VenueStateUnknown(f"{action}: {base_url} answered without JSON ({text}); {lost}")
        return TransientVenueError(f"{action}: {base_url} answered without JSON ({text}); retry "
                                   "with backoff")
    if isinstance(exc, requests.exceptions.RequestException):  # broken reply, bad chunking...
        if places_order:
            return VenueStateUnknown(f"{action}: request to {base_url} failed ({exc}); {lost}")
        return TransientVenueError(f"{action}: request to {base_url} failed: {exc}")
    text = str(exc)
    if "tickSize" in text or "stepSize" in text:
        return OrderRejected(f"{action}: {text}; round the price to the symbol's tickSize")
    if "signing seeds" in text or "InvalidSeed" in name:
        return VenueError(f"{action}: no usable zk seeds to sign the order; set {ENV_SEEDS} (the "
                          "Omni key from the web UI) in the environment or .env")
    if "account data" in text:
        return VenueError(f"{action}: {text}: the account request failed (check the API "
                          "credentials and the base URL)")
    return VenueError(f"{action}: apexomni raised {name}: {text}")


class ApexClient:
    """Checked access to one Apex venue: every method returns the reply's ``data`` or raises an
    ``engine.errors`` class (see the module docstring).

    Args:
        base_url: ``"main"``, ``"test"`` or a URL (a local venue: ``http://127.0.0.1:PORT``).
        credentials: for private calls; default :func:`credentials_from_env` on first use.
        timeout: seconds per request (apexomni's ``request_timeout``).
    """

    def __init__(self, base_url: str, credentials: ApexCredentials | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = _endpoint(base_url)
        self.timeout = timeout
        self._credentials = credentials
        self._public: Any = None
        self._private: Any = None

    def __repr__(self) -> str:
        return f"ApexClient({self.base_url!r})"

    def set_timeout(self, seconds: float) -> None:
        """Change the per-request timeout (also of clients already made)."""
        self.timeout = seconds
        for c in (self._public, self._private):
            if c is not None:
                c.timeout = seconds  # apexomni's HTTP.timeout, passed to requests on each call

    @property
    def public(self) -> Any:
        if self._public is None:
            self._public = public_client(self.base_url, self.timeout)
        return self._public

    @property
    def private(self) -> Any:
        if self._private is None:
            self._private = private_client(self.base_url, self._credentials, self.timeout)
        return self._private

    def call(self, action: str, fn: Callable[..., Any], *args: Any,
             places_order: bool = False, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (an apexomni method), map exceptions, :func:`check` it."""
        try:
            resp = fn(*args, **kwargs)
        except VenueError:
            raise
        except Exception as exc:
            raise map_exception(exc, action, self.base_url, places_order) from exc
        return check(resp, action)

    # -- public ----------------------------------------------------------------------------
    def server_time_ms(self) -> int:
        data = self.call("server time", self.public.server_time)
        return int(data["time"])

    def symbols(self) -> Any:
        return self.call("symbols", self.public.configs_v3)

    def klines(self, symbol: str, interval: str, start_s: int | None = None,
               end_s: int | None = None, limit: int | None = None) -> list[dict[str, str]]:
        """Candles (oldest first) as Apex sends them: string values, ``t`` = open time in ms."""
        kw = {k: v for k, v in (("start", start_s), ("end", end_s), ("limit", limit))
              if v is not None}
        data = self.call(f"klines {symbol} {interval}", self.public.klines_v3,
                         symbol=symbol, interval=interval, **kw)
        return list(data.get(symbol.replace("-", ""), [])) if isinstance(data, Mapping) else []

    def ticker(self, symbol: str) -> dict[str, Any]:
        data = self.call(f"ticker {symbol}", self.public.ticker_v3, symbol=symbol.replace("-", ""))
        return data[0] if data else {}

    # -- private ---------------------------------------------------------------------------
    def account(self) -> dict[str, Any]:
        # get_account_v3 returns data only (None on error) and caches it for signing
        try:
            acct = self.private.get_account_v3()
        except VenueError:
            raise
        except Exception as exc:
            raise map_exception(exc, "account", self.base_url) from exc
        if acct is None:
            raise VenueError(
                f"account: {self.base_url} refused the account request; check {ENV_KEY}, "
                f"{ENV_SECRET}, {ENV_PASSPHRASE} and that the keys belong to this network")
        if isinstance(acct, Mapping) and "code" in acct and "id" not in acct:
            check(acct, "account")
        return dict(acct)

    def balance(self) -> dict[str, Any]:
        return self.call("account balance", self.private.get_account_balance_v3)

    def open_orders(self) -> list[dict[str, Any]]:
        return self.call("open orders", self.private.open_orders_v3)

    def fills(self, **kwargs: Any) -> dict[str, Any]:
        return self.call("fills", self.private.fills_v3, **kwargs)

    def worst_price(self, symbol: str, side: str, size: str) -> dict[str, Any]:
        return self.call(f"worst price {symbol}", self.private.get_worst_price_v3,
                         symbol=symbol, side=side, size=size)

    def create_order(self, **kwargs: Any) -> dict[str, Any]:
        """``create_order_v3(**kwargs)``; pass your own ``clientId`` (idempotent retries)."""
        what = f"create order {kwargs.get('symbol', '')} {kwargs.get('side', '')} " \
               f"{kwargs.get('type', '')} clientId={kwargs.get('clientId', '?')}"
        return self.call(what, self.private.create_order_v3, places_order=True, **kwargs)

    def delete_order(self, order_id: str) -> Any:
        return self.call(f"delete order {order_id}", self.private.delete_order_v3, id=order_id)

    def delete_open_orders(self, symbol: str | None = None) -> Any:
        kw = {"symbol": symbol} if symbol else {}
        return self.call("delete open orders", self.private.delete_open_orders_v3, **kw)

    def order_by_client_id(self, client_id: str) -> dict[str, Any]:
        return self.call(f"order clientId={client_id}",
                         self.private.get_order_by_client_order_id_v3, id=client_id)

    def history_orders(self, **kwargs: Any) -> dict[str, Any]:
        return self.call("history orders", self.private.history_orders_v3, **kwargs)
