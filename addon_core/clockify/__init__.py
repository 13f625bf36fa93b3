"""Clockify's side of the contract: tokens, manifest, event types, hosts, the paced
API client and its shared budget, and the operation catalogue."""
