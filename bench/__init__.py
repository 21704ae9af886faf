"""The jaxloss benchmark suite: jaxloss side by side with optax and PyTorch.

Run it with ``python -m bench`` (or ``python bench/run.py``); see
``bench/README.md`` for what is measured and how to read the results.
"""
