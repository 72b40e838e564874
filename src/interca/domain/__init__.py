"""Pure rules of interca: no I/O, no database, no web framework, no settings reads."""
