"""NIQE throughput at 512x512 on CPU: unires_jax.quality.niqe vs BasicSR's NIQE, same run.

Run: python benchmarks/quality_niqe.py [--images 8] [--repeats 3]
Needs the test-only oracle `pip install --no-deps basicsr==1.4.2` (its NIQE module files are
loaded by path, as in tests/quality/test_niqe.py). Both use BasicSR's standard parameters.
Prints images/s of each and the ratio (ours / BasicSR, higher is better for us).
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time
import types
import warnings

import numpy as np
import skimage.data
import skimage.transform

from unires_jax.quality import niqe


def load_basicsr_niqe():
    """BasicSR's niqe module and parameter file, without its torchvision-importing __init__."""
    spec = importlib.util.find_spec("basicsr")
    if spec is None:
        sys.exit("BasicSR missing: pip install --no-deps basicsr==1.4.2")
    root = pathlib.Path(spec.submodule_search_locations[0])
    saved = {k: sys.modules[k] for k in list(sys.modules) if k == "cv2" or k.startswith("basicsr")}
    added = []

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__path__ = []
        m.__dict__.update(attrs)
        sys.modules[name] = m
        added.append(name)
        return m

    def load(name, path):
        s = importlib.util.spec_from_file_location(name, path)
        m = importlib.util.module_from_spec(s)
        sys.modules[name] = m
        added.append(name)
        s.loader.exec_module(m)
        return m

    registry = types.SimpleNamespace(register=lambda: (lambda f: f))
    try:
        for k in saved:
            del sys.modules[k]
        stub("basicsr")
        utils = stub("basicsr.utils")
        stub("basicsr.metrics")
        stub("basicsr.utils.registry", METRIC_REGISTRY=registry)
        stub("cv2")
        utils.bgr2ycbcr = load("basicsr.utils.color_util", root / "utils/color_util.py").bgr2ycbcr
        load("basicsr.utils.matlab_functions", root / "utils/matlab_functions.py")
        load("basicsr.metrics.metric_util", root / "metrics/metric_util.py")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = load("basicsr.metrics.niqe", root / "metrics/niqe.py")
    finally:
        for k in added:
            sys.modules.pop(k, None)
        sys.modules.update(saved)
    return module, root / "metrics" / "niqe_pris_params.npz"


def photos(n: int) -> list[np.ndarray]:
    """n RGB uint8 512x512 images from scikit-image's bundled photos."""
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    out = []
    for i in range(n):
        im = getattr(skimage.data, names[i % len(names)])()
        im = skimage.transform.resize(im, (512, 512), order=3, preserve_range=True)
        out.append(np.clip(np.round(im), 0, 255).astype(np.uint8))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    bsr, npz = load_basicsr_niqe()
    model = niqe.load_niqe_model(npz)
    ims = photos(args.images)
    batch = np.stack(ims) / 255.0

    def ours():
        return niqe.score(batch, model)

    def basicsr():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.array([bsr.calculate_niqe(im[..., ::-1].copy(), 0) for im in ims])

    best = {}
    for name, fn in (("unires_jax", ours), ("basicsr", basicsr)):
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            scores = fn()
            times.append(time.perf_counter() - t)
        best[name] = (args.images / min(times), scores)
    diff = np.abs(best["unires_jax"][1] - best["basicsr"][1]).max()
    for name, (ips, _) in best.items():
        print(f"{name:>10}: {ips:7.2f} images/s (512x512 RGB, best of {args.repeats})")
    print(f"ratio unires_jax / basicsr: {best['unires_jax'][0] / best['basicsr'][0]:.2f}x")
    print(f"max |score difference|: {diff:.2e}")


if __name__ == "__main__":
    main()
