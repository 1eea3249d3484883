"""Presenting results: text tables, Markdown and HTML reports and plots, from result dictionaries; it runs nothing."""
