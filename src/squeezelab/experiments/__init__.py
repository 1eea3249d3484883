"""Experiments: train several models, measure them alike, judge the claims, and hand the results to ``report``."""
