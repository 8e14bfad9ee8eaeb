"""Hostile input and bad days: each case a user or an attacker could cause."""
