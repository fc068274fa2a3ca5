"""Which s2cloudless setting should be the default? The 160 m default against 20 m and 10 m.

Why: s2cloudless at 160 m with ``average_over`` 2 and ``dilation_size`` 1 (the eo-learn LULC
example's setting) costs little, but its blocks and dilation flag clear land around every
cloud; at the cube's own 10 m it is exact and slow. Printed, per setting, side by side:

- on the real L1C crop (tests/data/s2_l1c_crop, one frame): the cloud fraction and the share
  of pixels whose mask equals the 10 m mask's;
- on the default demo AOI (512 x 512 px, 2017 every 5 days), against the generator's truth:
  the cloud fraction, agreement with the 10 m mask, recall of the true clouds, the share of
  clear land (no cloud, cirrus, haze or shadow within 3 px) flagged, the observations left
  valid against the truly clear ones, and the seconds the masking took.

The accuracy of whole runs with each setting comes from ``kedro compare base clouds_20m``.

    .venv/bin/python benchmarks/cloud_mask_resolution.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cloud_masking import crop_cube  # noqa: E402
from end_to_end import machine  # noqa: E402

from perceptive.eo.cloud_masking import cloud_masks  # noqa: E402

SETTINGS = {
    "160 m, average 2, dilation 1 (default)": {"processing_resolution": 160},
    "20 m, average 1, dilation 1": {
        "processing_resolution": 20, "average_over": 1, "dilation_size": 1,
    },
    "10 m, average 1, dilation 1": {
        "processing_resolution": 10, "average_over": 1, "dilation_size": 1,
    },
}  # fmt: skip


def masks_of(cube) -> dict[str, tuple[np.ndarray, float]]:
    out = {}
    for name, options in SETTINGS.items():
        start = time.perf_counter()
        mask = cloud_masks(cube, **options)["cloud_mask"].values
        out[name] = (mask, time.perf_counter() - start)
    return out


def main() -> int:
    from perceptive.sources.demo import demo_grid, demo_scene

    print(f"machine: {machine()}\n")
    crop = masks_of(crop_cube())
    reference = crop[list(SETTINGS)[-1]][0]
    print("real L1C crop (96 x 96 px, 2017-02-16)")
    print(f"{'setting':<42}{'cloud fraction':>16}{'equal to 10 m':>15}")
    for name, (mask, _) in crop.items():
        print(f"{name:<42}{mask.mean():>16.3f}{(mask == reference).mean():>15.3f}")

    scene = demo_scene(demo_grid(512, 512))
    cube = scene.l1c_cube(tile_size=256)
    truth = scene.truth(tile_size=256).compute()
    demo = masks_of(cube)
    reference = demo[list(SETTINGS)[-1]][0]
    cloud, no_data = truth["cloud"].values, truth["no_data"].values
    veiled = (truth["cloud"] | truth["cirrus"] | truth["haze"] | truth["shadow"]).values
    near = np.stack([ndimage.binary_dilation(v, iterations=3) for v in veiled])
    clear_land = ~near & ~no_data
    truly_clear = (~veiled & ~no_data).sum()
    print(f"\ndemo AOI (512 x 512 px, {len(scene.times)} frames), against its truth")
    print(f"{'setting':<42}{'cloud fraction':>16}{'equal to 10 m':>15}{'cloud recall':>14}"
          f"{'clear flagged':>15}{'valid / clear':>15}{'seconds':>9}")  # fmt: skip
    for name, (mask, seconds) in demo.items():
        valid = (~mask & ~no_data).sum()
        print(f"{name:<42}{mask[~no_data].mean():>16.3f}{(mask == reference).mean():>15.3f}"
              f"{(mask & cloud).sum() / cloud.sum():>14.3f}"
              f"{(mask & clear_land).sum() / clear_land.sum():>15.3f}"
              f"{valid / truly_clear:>15.2f}{seconds:>9.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
