"""Installations of an add-on in a workspace: the lifecycle routes and
the look-ups of an installation's context."""
