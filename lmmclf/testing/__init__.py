"""Builders of test data in real layouts (image folders, UCF-101, BAR, ERA) and tiny models.

Used by the tests, the benchmarks and the offline demo; nothing here downloads anything.
"""
