#!/usr/bin/env python3
"""Writes tests/fixtures/preprocess/golden.safetensors: image-preprocessing goldens for
engine/image_prep.c, produced by transformers' own GLM-4.6V image processor.

Without torchvision, transformers 5.5.4 resolves "Glm46VImageProcessor" to the PIL backend class
Glm46VImageProcessorPil (checked below), so that is the reference: PIL bicubic resize, then
rescale (float64 multiply by 1/255, cast to float32) and normalise ((x - mean) / std in float32).

For every case NAME the file holds:
  NAME/input         u8  [H, W, 3]  the RGB image given to the processor (RGBA and L sources are
                                    converted with PIL convert("RGB") first; that result is stored)
  NAME/bounds        i64 [2]        min_pixels, max_pixels passed as size={shortest_edge,
                                    longest_edge}
  NAME/resized       u8  [h, w, 3]  the processor's own resize (Glm46VImageProcessorPil.resize)
  NAME/pixel_values  f32 [gh*gw, 3*2*14*14]
  NAME/grid_thw      i64 [1, 3]
Patch, temporal and merge sizes, mean and std are the GLM-4.6V defaults (spec section 3).

Usage: python3 tools/gen_preprocess_golden.py [OUT]   (run from the repository root)
"""

import json
import sys
from pathlib import Path

import numpy as np
import PIL
import safetensors
import torch
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers.image_utils import SizeDict
from transformers.models.auto.image_processing_auto import AutoImageProcessor
from transformers.models.glm46v.image_processing_pil_glm46v import Glm46VImageProcessorPil

DEFAULT_MIN = 12544
DEFAULT_MAX = 9633792

# GLM-4.6V's preprocessor_config.json (spec section 3).
PREPROCESSOR_CONFIG = {
    "size": {"shortest_edge": DEFAULT_MIN, "longest_edge": DEFAULT_MAX},
    "do_rescale": True,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Glm46VImageProcessor",
    "processor_class": "Glm46VProcessor",
}


def pattern(h, w, seed):
    """Deterministic content with hard edges (0/255 blocks, so bicubic overshoot is clamped),
    smooth gradients and fine noise, so any resampling error shows in every channel."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    r = (x * 255 // max(w - 1, 1)).astype(np.int32)
    g = np.where(((x // 5) + (y // 3)) % 2 == 0, 255, 0)
    b = ((x + 2 * y) * 37 % 256).astype(np.int32)
    b = np.where((x - y) % 11 < 2, 0, b)
    noise = rng.integers(-20, 21, size=(h, w, 3))
    img = np.stack([r, g, b], axis=-1) + noise
    return np.clip(img, 0, 255).astype(np.uint8)


def patchify(resized, proc):
    """pixel_values from a resized HWC uint8 image, as Glm4vImageProcessorPil._preprocess does."""
    x = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(proc.image_mean, np.float32)) / np.array(proc.image_std, np.float32)
    h, w = x.shape[:2]
    x = np.repeat(np.transpose(x, (2, 0, 1))[None], 2, axis=0)  # (t, c, h, w)
    x = x.reshape(2, 3, h // 28, 2, 14, w // 28, 2, 14)
    x = np.transpose(x, (2, 5, 3, 6, 1, 0, 4, 7))  # (bh, bw, ih, iw, c, t, py, px)
    return x.reshape((h // 14) * (w // 14), 3 * 2 * 14 * 14)


def case_images():
    """(name, PIL image as the caller would pass it, min_pixels, max_pixels)."""
    small_min = 2 * 28 * 28
    cases = [
        # already multiples of 28: no resampling at all
        ("exact_28x56", Image.fromarray(pattern(28, 56, 1)), small_min, DEFAULT_MAX),
        # 70/28 = 2.5 rounds to 2 (half to even), 98/28 = 3.5 rounds to 4
        ("round_half_70x98", Image.fromarray(pattern(70, 98, 2)), small_min, DEFAULT_MAX),
        # only the height changes (vertical pass only), then only the width
        ("height_only_33x56", Image.fromarray(pattern(33, 56, 3)), small_min, DEFAULT_MAX),
        ("width_only_28x65", Image.fromarray(pattern(28, 65, 4)), small_min, DEFAULT_MAX),
        # above max_pixels: strong anti-aliased downscale
        ("above_max_150x200", Image.fromarray(pattern(150, 200, 5)), small_min, 2 * 56 * 84),
        # below min_pixels: upscale
        ("below_min_40x50", Image.fromarray(pattern(40, 50, 6)), 2 * 56 * 56, DEFAULT_MAX),
        # below min_pixels with the real default bounds
        ("default_bounds_40x100", Image.fromarray(pattern(40, 100, 7)), DEFAULT_MIN, DEFAULT_MAX),
        # aspect ratios near the 200 limit (199.3 wide after the small-image scale x4; tall 133),
        # where max(28, ...) keeps the short side
        ("aspect_wide_7x1395", Image.fromarray(pattern(7, 1395, 8)), small_min, 800),
        ("aspect_tall_400x3", Image.fromarray(pattern(400, 3, 9)), small_min, 800),
        # below 28 px on one side: scaled up by transformers before smart_resize
        ("tiny_20x50", Image.fromarray(pattern(20, 50, 10)), small_min, DEFAULT_MAX),
    ]
    rgba = np.concatenate([pattern(40, 50, 11), pattern(40, 50, 12)[:, :, :1]], axis=-1)
    cases.append(("rgba_40x50", Image.fromarray(rgba, mode="RGBA"), small_min, DEFAULT_MAX))
    gray = pattern(35, 50, 13)[:, :, 1]
    cases.append(("gray_35x50", Image.fromarray(gray, mode="L"), small_min, DEFAULT_MAX))
    return cases


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/preprocess/golden.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)

    cfg_dir = out.parent / ".cfg"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG))
    proc = AutoImageProcessor.from_pretrained(str(cfg_dir))
    (cfg_dir / "preprocessor_config.json").unlink()
    cfg_dir.rmdir()
    assert type(proc) is Glm46VImageProcessorPil, type(proc)

    tensors = {}
    for name, image, min_px, max_px in case_images():
        size = {"shortest_edge": min_px, "longest_edge": max_px}
        # Glm4v's processor applies exactly this conversion (convert_to_rgb) before anything else.
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        rgb_np = np.asarray(rgb, dtype=np.uint8).copy()
        res = proc(images=image, size=size, return_tensors="np")
        grid = np.asarray(res["image_grid_thw"], dtype=np.int64)
        gh, gw = int(grid[0, 1]), int(grid[0, 2])
        # The processor's own resize on the CHW array it builds itself (PIL hands back an
        # unchanged copy when the size already fits).
        chw = np.transpose(rgb_np, (2, 0, 1))
        resized = proc.resize(chw, size=SizeDict(height=gh * 14, width=gw * 14), resample=proc.resample)
        resized = np.ascontiguousarray(np.transpose(resized, (1, 2, 0))).astype(np.uint8)
        # The stored resize must be the one behind pixel_values: rebuild them from it.
        assert np.array_equal(patchify(resized, proc), res["pixel_values"]), name
        tensors[f"{name}/input"] = rgb_np
        tensors[f"{name}/bounds"] = np.array([min_px, max_px], dtype=np.int64)
        tensors[f"{name}/resized"] = resized
        tensors[f"{name}/pixel_values"] = np.ascontiguousarray(res["pixel_values"], dtype=np.float32)
        tensors[f"{name}/grid_thw"] = grid
        print(f"{name}: {rgb_np.shape[0]}x{rgb_np.shape[1]} -> {gh * 14}x{gw * 14} grid {grid.tolist()}")

    metadata = {
        "generator": "tools/gen_preprocess_golden.py",
        "processor_class": type(proc).__name__,
        "transformers": transformers.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
    }
    save_file(tensors, str(out), metadata=metadata)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
