"""Applying a trained model: sliding-window inference on the model grid, probabilities resampled
back onto the input grid, then tumor post-processing.

``segment_volume`` returns a labelmap aligned voxel-for-voxel with the input image
{0 background, 1 organ, 2 tumor} and a JSON-able summary (tumor count, volumes in ml,
equivalent and RECIST diameters in mm, centroids in RAS mm). Post-processing: a predicted tumor
component must touch the organ (predicted, or given with ``organs``) or it is dropped, and
components whose equivalent radius is below ``min_radius_mm`` are relabelled organ (default: the
model's own, ``postprocess.model_min_radius_mm``: 3 mm, or 1.5 of its voxels when coarser).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..anatomy.measure import measure_mask
from ..anatomy.analysis import check_image, labelmap_array
from ..core.errors import InputError, ModelError
from ..core.files import shown
from ..core.volume import Volume
from .checkpoint import (
    check_label_set,
    label_names_of,
    load_checkpoint,
    load_model_state,
)
from .device import is_out_of_memory, out_of_memory_error
from .models import ModelConfig, build_model
from .pipeline import RAS_LABELS
from .postprocess import (
    components,
    keep_touching,
    model_min_radius_mm,
    remove_small_components,
)
from .tasks import guessing_organ, task_label_array, task_organs


@dataclass
class LoadedModel:
    """A model ready for inference and the facts of its checkpoint."""

    model: torch.nn.Module
    path: Path
    organ: str
    label_names: dict[int, str]
    spacing_mm: tuple[float, float, float]
    window_hu: tuple[float, float]
    patch: tuple[int, int, int]
    device: torch.device
    payload_info: dict[str, Any]

    @property
    def min_radius_mm(self) -> float:
        """Tumor components below this equivalent radius (mm) are removed from this model's
        predictions unless the caller says otherwise (``postprocess.model_min_radius_mm``)."""
        return model_min_radius_mm(self.spacing_mm)

    @property
    def organs(self) -> tuple[str, ...]:
        """The organs the model segments (one, or several for a multi-organ model)."""
        return task_organs(self.organ)


def load_segmentation_model(path: str | Path, device: torch.device, organ: str | None = None) -> LoadedModel:
    """Read, check (label set, organ) and build the model of a checkpoint, in eval mode."""
    path = Path(path)
    payload = load_checkpoint(path, map_location="cpu")
    check_label_set(payload, path, organ)
    model = build_checked_model(payload, path)
    model.to(device).eval()
    config = payload.get("config") or {}
    names = label_names_of(payload)
    spacing, window, patch = _preprocessing(payload, path)
    return LoadedModel(
        model=model, path=path, organ=str(config.get("organ", names[1])), label_names=names,
        spacing_mm=spacing, window_hu=window, patch=patch, device=device,
        payload_info={"step": payload.get("step"), "best_metric": payload.get("best_metric"),
                      "versions": payload.get("versions"), "config": config},
    )


def build_checked_model(payload: dict[str, Any], path: Path) -> torch.nn.Module:
    """The checkpoint's network with its weights; ModelError when the description cannot be
    built or the weights do not fit it (an edited or foreign checkpoint)."""
    try:
        model = build_model(ModelConfig.from_dict(payload["model_config"]))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"checkpoint '{path}' describes a network that cannot be built "
                         f"({type(exc).__name__}: {exc}); use a checkpoint written by `tumorsynth train`") from exc
    load_model_state(model, payload, path)
    return model


def _preprocessing(payload: dict[str, Any], path: Path) -> tuple[tuple, tuple, tuple]:
    """(spacing mm, HU window, patch) of a checkpoint; ModelError when they are unusable."""
    pre = payload["preprocessing"]
    try:
        spacing = tuple(float(s) for s in pre["spacing_mm"])
        window = tuple(float(w) for w in pre["window_hu"])
        patch = tuple(int(p) for p in pre["patch"])
        ok = (len(spacing) == 3 and all(np.isfinite(spacing)) and min(spacing) > 0 and len(window) == 2
              and window[0] < window[1] and len(patch) == 3 and min(patch) >= 8)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelError(f"checkpoint '{path}' has unusable preprocessing facts ({shown(pre)}); "
                         "use a checkpoint written by `tumorsynth train`")
    return spacing, window, patch


def predict_logits(model: torch.nn.Module, image: torch.Tensor, patch: tuple[int, int, int],
                   device: torch.device, *, overlap: float = 0.5, mode: str = "gaussian",
                   amp: bool = True) -> torch.Tensor:
    """Sliding-window logits (1, C, ...) on the CPU for a (1, 1, ...) windowed image; the
    windows run on ``device``."""
    from monai.inferers import sliding_window_inference

    use_amp = amp and device.type == "cuda"
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            out = sliding_window_inference(image, patch, sw_batch_size=2, predictor=model,
                                           overlap=overlap, mode=mode, sw_device=device,
                                           device=torch.device("cpu"))
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if is_out_of_memory(exc):
            raise out_of_memory_error(device, patch[0], "inference") from exc
        raise
    if hasattr(out, "as_tensor"):  # a MetaTensor: drop the input's metadata
        out = out.as_tensor()
    return out.float()


def to_model_grid(image: Volume, spacing_mm: tuple[float, float, float],
                  window_hu: tuple[float, float]) -> Any:
    """(1, I, J, K) MetaTensor: the image reoriented to RAS, resampled to ``spacing_mm`` and
    windowed to [0, 1]; its ``affine`` maps model voxels to RAS."""
    from monai.data import MetaTensor
    from monai.transforms import Orientation, ScaleIntensityRange, Spacing

    arr = np.asarray(image.array, dtype=np.float32)[None]
    x = MetaTensor(torch.from_numpy(arr.copy()), affine=torch.as_tensor(image.affine))
    x = Orientation(axcodes="RAS", labels=RAS_LABELS)(x)
    x = Spacing(pixdim=spacing_mm, mode="bilinear")(x)
    return ScaleIntensityRange(window_hu[0], window_hu[1], 0.0, 1.0, clip=True)(x)


def argmax_on_grid(probs: Any, target: Volume) -> np.ndarray:
    """Argmax of the (C, ...) probabilities (MetaTensor on the model grid) after resampling each
    class (linear) onto ``target``'s grid; one class at a time to bound memory."""
    from monai.transforms import SpatialResample

    resample = SpatialResample(mode="bilinear", padding_mode="border")
    dst = torch.as_tensor(target.affine, dtype=torch.float64)
    best_val = best_idx = None
    for c in range(probs.shape[0]):
        chan = resample(probs[c:c + 1], dst_affine=dst, spatial_size=target.shape)
        val = np.asarray(chan.detach().cpu().numpy()[0], dtype=np.float32)
        if best_val is None:
            best_val, best_idx = val, np.zeros(val.shape, dtype=np.uint8)
        else:
            better = val > best_val
            best_val = np.where(better, val, best_val)
            best_idx[better] = c
    return best_idx


def postprocess_labels(labels: np.ndarray, spacing: np.ndarray, organ_region: np.ndarray | None,
                       min_radius_mm: float) -> tuple[np.ndarray, dict[str, int]]:
    """Task labels after the organ constraint and the size filter (see the module doc)."""
    organ = organ_region if organ_region is not None else labels == 1
    tumor, outside = keep_touching(labels == 2, organ)
    kept, small = remove_small_components(tumor, spacing, min_radius_mm)
    fill = tumor & ~kept                      # removed small tumors become organ again ...
    if organ_region is not None:
        fill &= organ_region                  # ... where the given organ is
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[organ | fill] = 1
    out[kept] = 2
    return out, {"outside_organ": outside, "small": small}


def tumor_summary(labels: Volume, organ: str, label_names: dict[int, str]) -> dict[str, Any]:
    """Count, volumes (ml) and diameters (mm) of the tumors of a task labelmap."""

    comp, n = components(labels.array == 2)
    tumors = []
    for i in range(1, n + 1):
        m = measure_mask(comp == i, labels.affine)
        tumors.append({"id": i, "volume_ml": m["volume_ml"],
                       "equivalent_diameter_mm": m["equivalent_diameter_mm"],
                       "recist_long_mm": m["recist_long_mm"], "recist_short_mm": m["recist_short_mm"],
                       "centroid_ras": m["centroid_ras"]})
    organ_ml = float(np.count_nonzero(labels.array >= 1)) * float(np.prod(labels.spacing)) / 1000.0
    return {"organ": organ, "label_names": {str(k): v for k, v in label_names.items()},
            "tumor_count": n, "total_tumor_ml": float(sum(t["volume_ml"] for t in tumors)),
            "organ_volume_ml": organ_ml, "tumors": tumors}


def segment_volume(loaded: LoadedModel, image: Volume, organs: Volume | None = None, *,
                   organs_convention: str = "auto", min_radius_mm: float | None = None,
                   overlap: float = 0.5) -> tuple[Volume, dict[str, Any]]:
    """(labelmap on ``image``'s grid, summary). ``organs``: an organ labelmap on the same grid
    (any convention) that replaces the predicted organ and bounds the tumors. Tumor components
    below ``min_radius_mm`` (default: the model's ``min_radius_mm``) are relabelled organ."""
    if min_radius_mm is None:
        min_radius_mm = loaded.min_radius_mm
    if not 0.0 <= overlap < 1.0:
        raise InputError(f"overlap must be in [0, 1), got {overlap}")
    check_image(image)
    organ_region = None
    if organs is not None:  # the organs of the model (all of them for a multi-organ model)
        arr, conv = labelmap_array(organs, organs_convention, image=image, organ=guessing_organ(loaded.organ),
                                   what="the organ labels")
        organ_region = task_label_array(arr, loaded.organ, conv) >= 1
        if not organ_region.any():
            raise InputError(f"the organ labels hold no {' or '.join(loaded.organs)} ('{conv}' convention); check "
                             "--organs / --labels, or leave --organs out to use the predicted organ")
    x = to_model_grid(image, loaded.spacing_mm, loaded.window_hu)
    logits = predict_logits(loaded.model, x.unsqueeze(0), loaded.patch, loaded.device, overlap=overlap)
    from monai.data import MetaTensor

    probs = MetaTensor(torch.softmax(logits[0], dim=0), affine=x.affine)
    raw = argmax_on_grid(probs, image)
    labels, removed = postprocess_labels(raw, image.spacing, organ_region, min_radius_mm)
    out = Volume(labels, image.affine.copy(), {"case_id": image.metadata.get("case_id", "")})
    summary = tumor_summary(out, loaded.organ, loaded.label_names)
    summary.update({"organ_source": "given" if organs is not None else "predicted",
                    "min_radius_mm": float(min_radius_mm), "removed_components": removed,
                    "model": str(loaded.path), "model_spacing_mm": list(loaded.spacing_mm)})
    return out, summary


__all__ = ["LoadedModel", "load_segmentation_model", "predict_logits", "to_model_grid",
           "argmax_on_grid", "postprocess_labels", "tumor_summary", "segment_volume"]
