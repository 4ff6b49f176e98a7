"""The benchmark (run each as ``python scripts/bench/<name>.py``; tests import them as ``scripts.bench.<name>``)."""
