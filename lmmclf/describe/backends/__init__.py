"""Describe backends: the registry and base class in base.py, one module per backend."""
