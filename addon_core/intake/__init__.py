"""Webhooks in: verification, the coalescing durable writer and the lean store."""
