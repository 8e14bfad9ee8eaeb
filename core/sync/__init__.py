"""Sync: bring the index in line with the sources.

``connector`` is the interface every source implements (Protocols, ``Batch``);
``engine`` diffs, chunks (``chunking``), embeds and writes; ``service`` is the one
way syncs start (locks, many sources); ``status`` keeps reports and checkpoints;
``worker`` schedules syncs and ``job_queue`` hands them to RQ workers.
"""
