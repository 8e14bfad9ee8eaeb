"""Measuring Archivist on data with known answers (BEIR retrieval sets)."""
