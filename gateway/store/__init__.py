"""Shared state in the database: the core tables and their migrations."""
