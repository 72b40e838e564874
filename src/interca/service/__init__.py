"""Use cases: one method per lifecycle step. Services own transactions and locks, and combine
the domain rules, the key stores and the repositories."""
