"""Frontends: they translate platform events into Questions and render answers; they do not think."""
