"""ApeX Omni: the client set-up, the local venue, the market-data feed and candle download.

See docs/apex.md.
"""
