"""The paper's published numbers, and (later) the builders that put reproduced values beside them."""
