"""The database and what lives in it: models, engines and sessions, leases,
retention, and the vault that seals tokens and secrets."""
