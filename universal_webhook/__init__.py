"""Universal Webhook: every Clockify event and custom webhooks, run through flows."""
