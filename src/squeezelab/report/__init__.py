"""Presenting results: text tables now; Markdown and HTML reports build on the same helpers."""
