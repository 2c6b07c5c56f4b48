"""How long loading the shipped zoo takes, as ratios against baselines measured in the same run.

Baselines: building the same `HookedTransformer` with random weights (no files), and importing
TransformerLens + SAE-Lens (paid once per process whatever is loaded).

    HF_HUB_OFFLINE=1 python benchmarks/bench_zoo_load.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _seconds(fn: object, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    start = time.perf_counter()
    import sae_lens  # noqa: F401
    import transformer_lens  # noqa: F401

    import_s = time.perf_counter() - start

    from feature_lens.zoo import default_zoo_dir, load_zoo_model, zoo_dictionary_dirs
    from feature_lens.zoo.dictionaries import load_dictionary
    from feature_lens.zoo.model import build_model, read_model_config

    config = read_model_config(default_zoo_dir())
    build_s = _seconds(lambda: build_model(config))
    load_s = _seconds(load_zoo_model)
    saes_s = _seconds(lambda: [load_dictionary(d) for d in zoo_dictionary_dirs().values()])
    print(f"import transformer_lens + sae_lens: {import_s:.2f} s (paid once per process)")
    print(f"random-init model (baseline):       {build_s:.3f} s")
    print(f"load_zoo_model():                   {load_s:.3f} s  = {load_s / build_s:.2f}x baseline")
    print(f"all zoo SAEs:                       {saes_s:.3f} s  = {saes_s / build_s:.2f}x baseline")
    total = load_s + saes_s
    print(
        f"model + SAEs:                       {total:.3f} s  = {total / import_s:.4f}x the imports"
    )


if __name__ == "__main__":
    main()
