"""Judgment annotation (PAPER.md 1.6): who judges a response, with which prompt, and how a verdict is read."""
