"""Benchmark: rank 100k synthetic nodes vs a bare numpy argmin over the same arrays.

Prints the ratio (goal <= 3x). Run with `make bench` or `.venv/bin/python scripts/bench_scoring.py`.
"""

from __future__ import annotations

import timeit

import numpy as np

from tools.broker.scoring import rank, score_arrays

N = 100_000
REPEAT = 30


def main() -> None:
    rng = np.random.default_rng(42)
    ci = rng.uniform(20, 800, N)
    price = rng.uniform(-50, 300, N)
    util = rng.uniform(0, 1, N)

    def bare() -> int:
        return int(np.argmin(0.6 * ci / 500 + 0.3 * price / 100 + 0.1 * util))

    def ours() -> int:
        s = score_arrays(ci, price, util)
        return int(rank(s.score, top_k=1)[0])

    def ours_full() -> int:
        s = score_arrays(ci, price, util)
        return int(rank(s.score)[0])

    assert bare() == ours() == ours_full()
    t_bare = min(timeit.repeat(bare, number=10, repeat=REPEAT)) / 10
    t_ours = min(timeit.repeat(ours, number=10, repeat=REPEAT)) / 10
    t_full = min(timeit.repeat(ours_full, number=10, repeat=REPEAT)) / 10
    print(f"nodes: {N}")
    print(f"bare numpy argmin:               {t_bare * 1e3:8.3f} ms")
    print(f"score_arrays + best (breakdown): {t_ours * 1e3:8.3f} ms  ratio {t_ours / t_bare:5.2f}x")
    print(f"score_arrays + full ranking:     {t_full * 1e3:8.3f} ms  ratio {t_full / t_bare:5.2f}x")


if __name__ == "__main__":
    main()
