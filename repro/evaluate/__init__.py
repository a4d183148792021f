"""Scoring: AlpacaEval win rates (alpaca_eval), ranking benchmarks (lm-eval), ROUGE; one JSON per score."""
