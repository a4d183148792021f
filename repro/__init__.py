"""CUT reproduction harness."""
