"""X.509 rules: parsing uploads safely, CSRs, upload checks, chains and the leaf profile."""
