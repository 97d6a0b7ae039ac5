"""``eval``: compose cached results into tables, files, plots and paired comparisons.

``methods`` is the registry (a data table) of what can be evaluated, ``report`` collects the
runs from the cache, ``tables``/``plots`` render them, ``stats`` compares two methods. Nothing
here imports torch: reading finished results needs only h5py and numpy.
"""
