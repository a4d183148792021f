"""Judgment annotation (Figures 8 and 9): who judges a response, with which prompt, and how a verdict is read."""
