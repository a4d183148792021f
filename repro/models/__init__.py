"""Models: loading (load.py) and the ones the workflow builds itself (build.py, tiny.py)."""
