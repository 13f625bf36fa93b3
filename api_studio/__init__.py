"""API Studio: a no-code console over the Clockify API, inside Clockify."""
