"""NRVL: noise-robustness evaluation of video language models.

The corruption library is ``nrvl.kernels``; the rest of this package is the
evaluation pipeline (decode, datasets, models, judge, rating, report, CLI).
"""
__version__ = "0.1.0"
