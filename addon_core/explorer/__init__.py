"""The API explorer: Clockify operations listed, described and run."""
