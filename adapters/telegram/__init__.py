"""The Telegram front end: alerts from the engine's event stream and commands back to it.

Runs as its own process (``tradebot telegram CONFIG``) beside any mode: it subscribes to the
ZeroMQ bridge (``adapters/zmq_bridge.py``, wire v1 in ``engine/wire.py``) and sends commands over
its command channel (``adapters/zmq_client.py``), so the engine is never slowed by Telegram.

- ``security``: the token and allowlist from the environment, token redaction in every log record.
- ``outbox``: the SQLite delivery queue (at least once, deduplicated, in order, 429-aware).
- ``state``: the front end's own view of the engine, built from a snapshot plus events.
- ``alerts``: event -> alert text, and the alert chart (matplotlib Agg).
- ``bot``: the python-telegram-bot Application, its handlers, the subscriber and the deliverer.

Docs: ``docs/telegram.md``.
"""
