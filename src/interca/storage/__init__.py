"""Tables, repositories and migrations: the only package that knows SQL."""
