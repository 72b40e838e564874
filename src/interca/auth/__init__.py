"""Who is calling: API-key obfuscation, password hashing, sessions, OAuth2 tokens, roles."""
