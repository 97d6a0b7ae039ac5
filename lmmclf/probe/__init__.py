"""The linear probe of paper 1 and the zero-shot baselines (the ``probe`` stage).

``trainer`` holds the training loop (torch), ``stage`` the keys and the artifact.
"""

from lmmclf.probe.stage import ALL_FEATURES, STAGE, TRAINED, ZERO_SHOT, probe_spec, run_probe

__all__ = ["ALL_FEATURES", "STAGE", "TRAINED", "ZERO_SHOT", "probe_spec", "run_probe"]
