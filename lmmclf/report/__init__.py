"""``lmmclf report``: a static site of what the cache holds, opened from disk with no server or network.

One module per job: :mod:`~lmmclf.report.gather` reads the artifacts the settings name (as
``eval`` finds them), :mod:`~lmmclf.report.leakage` measures how often descriptions name their
class, :mod:`~lmmclf.report.summary` computes the numbers of ``report.json``,
:mod:`~lmmclf.report.thumbnails` shrinks the images, :mod:`~lmmclf.report.gallery` writes the
gallery's data, :mod:`~lmmclf.report.render` the page, :mod:`~lmmclf.report.style` and
:mod:`~lmmclf.report.script` its CSS and JavaScript, and :mod:`~lmmclf.report.build` puts them
together (:func:`~lmmclf.report.build.build_report`).
"""
