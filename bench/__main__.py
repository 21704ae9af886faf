"""``python -m bench``: run the benchmark suite (see ``bench/README.md``)."""

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
