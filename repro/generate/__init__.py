"""Generation with one interface and two backends (transformers, vLLM), resumable and provenance-stamped."""
