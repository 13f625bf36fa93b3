"""Durable background jobs: the leased queue, worker heartbeats and dead letters."""
