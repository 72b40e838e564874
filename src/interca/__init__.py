"""interca: a self-hosted, ZIA-compatible custom intermediate CA service for TLS inspection."""

__version__ = "0.1.0"
