"""The inputs of the hostile-input tests (``test_hostile.py``): a small phantom and its labels in
several broken forms, checkpoints good and bad, datalists with hostile case ids.

Everything lives in one read-only ``inputs`` folder; a test snapshots it before a case and
checks afterwards that no input changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import save_volume

SMALL_PHANTOM = {"shape": (64, 64, 32), "spacing": (5.0, 5.0, 7.5)}
PWNED = "pwned-marker"


@dataclass
class World:
    root: Path            # inputs (never changed by a case)
    ct: Path
    organs: Path          # TotalSegmentator ids
    liver_ras: str        # "x:y:z" of a deep liver voxel
    air_ras: str
    files: dict[str, Path]

    def __getitem__(self, key: str) -> str:
        return str(self.files[key])


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (symlinks by their target text)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def files_under(folder: Path) -> list[str]:
    """Every file (hidden ones included) under ``folder``; [] when it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _ras(volume: Volume, ijk) -> str:
    return ":".join(f"{v:.2f}" for v in volume.voxel_to_ras(ijk))


def _checkpoints(root: Path, f: dict[str, Path]) -> None:
    import torch

    from Testing.fixtures.models import write_untrained_checkpoint
    from TumorSynthLib.segmentation.checkpoint import load_checkpoint, save_checkpoint

    f["model"] = write_untrained_checkpoint(root / "model.pt", channels=(4, 8), patch=16)
    payload = load_checkpoint(f["model"])
    wrong = dict(payload, model_config={**payload["model_config"], "channels": [8, 16]})
    f["model_wrong_arch"] = save_checkpoint(root / "wrong_arch.pt", {k: v for k, v in wrong.items()
                                                                    if k not in ("format", "format_version")})
    f["model_5_classes"] = write_untrained_checkpoint(root / "five.pt", out_channels=5)
    broken = dict(payload, model_config={"name": "unet", "channels": [4], "out_channels": 3})
    f["model_bad_config"] = save_checkpoint(root / "bad_config.pt", {k: v for k, v in broken.items()
                                                                    if k not in ("format", "format_version")})
    data = f["model"].read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    f["model_truncated"] = root / "truncated.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {root.parent / PWNED}",))

    torch.save({"format": "tumorsynth-segmentation", "model": Evil()}, root / "evil.pt")
    f["model_evil"] = root / "evil.pt"


def _nrrd_files(root: Path, f: dict[str, Path], shape: tuple[int, int, int]) -> None:
    raw = np.zeros(shape, dtype=np.int16)
    (root / "secret.raw").write_bytes(raw.tobytes())
    head = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
            f"sizes: {shape[0]} {shape[1]} {shape[2]}\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
            "endian: little\nencoding: raw\nspace origin: (0,0,0)\n")
    sub = root / "nrrd"
    sub.mkdir()
    (sub / "abs.nhdr").write_text(head + f"data file: {root / 'secret.raw'}\n\n")
    (sub / "up.nhdr").write_text(head + "data file: ../secret.raw\n\n")
    (sub / "nan.nrrd").write_bytes((head.replace("(1,0,0)", "(nan,0,0)") + "\n").encode() + raw.tobytes())
    f.update(nhdr_abs=sub / "abs.nhdr", nhdr_up=sub / "up.nhdr", nrrd_nan=sub / "nan.nrrd")


def _datalists(root: Path, f: dict[str, Path]) -> None:
    def write(name: str, entries: list[dict]) -> Path:
        path = root / name
        path.write_text(json.dumps({"training": entries}))
        return path

    pair = {"image": str(f["ct"]), "label": str(f["organs"])}
    f["dl_escape"] = write("dl_escape.json", [dict(pair, case_id="../../escaped"),
                                              dict(pair, case_id=str(root.parent / "abs_case"))])
    f["dl_same_name"] = write("dl_same.json", [dict(pair, case_id="a/b"), dict(pair, case_id="a_b")])
    f["dl_no_name"] = write("dl_noname.json", [dict(pair, case_id="../..")])
    f["dl_msd_label"] = write("dl_msd.json", [{"image": str(f["ct"]), "label": str(f["organs"]),
                                               "case_id": "ts"}])
    f["dl_missing_label"] = write("dl_missing.json", [{"image": str(f["ct"])}])
    (root / "dl_broken.json").write_text("{not json")
    f["dl_broken"] = root / "dl_broken.json"
    f["dl_good"] = write("dl_good.json", [dict(pair, case_id="c1")])


def make_world(root: Path) -> World:
    """Write every input of the hostile cases into ``root``."""
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=0, **SMALL_PHANTOM)
    root.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {}
    f["ct"] = save_volume(ct, root / "ct.nii.gz")
    f["organs"] = save_volume(organs, root / "organs.nii.gz")
    liver = organs.array == 5
    f["msd"] = save_volume(organs.with_array(liver.astype(np.int16)), root / "msd.nii.gz")
    f["frac"] = save_volume(organs.with_array(organs.array.astype(np.float32) + 0.4), root / "frac.nii.gz")
    f["negative"] = save_volume(organs.with_array(organs.array.astype(np.int16) - 1), root / "negative.nii.gz")
    f["ct_1e30"] = save_volume(ct.with_array(np.where(liver, 1e30, ct.array).astype(np.float32)), root / "ct_1e30.nii.gz")
    f["ct_nan"] = save_volume(ct.with_array(np.where(liver, np.nan, ct.array).astype(np.float32)), root / "ct_nan.nii.gz")
    small = Volume(organs.array[:-2], organs.affine)
    f["organs_small"] = save_volume(small, root / "organs_small.nii.gz")
    (root / "text.nii.gz").write_text("not an image")
    f["text"] = root / "text.nii.gz"
    (root / "empty_dir").mkdir()
    f["empty_dir"] = root / "empty_dir"
    (root / "a_file").write_text("x")
    f["a_file"] = root / "a_file"
    _nrrd_files(root, f, ct.shape)
    _datalists(root, f)
    _checkpoints(root, f)
    depth = ndimage.distance_transform_edt(liver, sampling=organs.spacing)
    return World(root=root, ct=f["ct"], organs=f["organs"],
                 liver_ras=_ras(ct, np.unravel_index(int(np.argmax(depth)), depth.shape)),
                 air_ras=_ras(ct, (1, 1, 1)), files=f)


def sleeping_process() -> subprocess.Popen:
    """A live process whose pid a planted lock can name."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def plant_lock(folder: Path, pid: int, name: str = ".tumorsynth.lock") -> Path:
    import socket

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "command": "tumorsynth planted",
                                "started": "earlier", "token": "planted"}))
    return path
