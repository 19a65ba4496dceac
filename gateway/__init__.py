"""callgate: an edge call gateway for USB voice modems (see README.md and docs/architecture.md)."""

__version__ = "0.1.0"
