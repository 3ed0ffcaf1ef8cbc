"""A "SYNTHETIC" mark burned into the pixels of an image slice (top-left corner).

Why burned in: a DICOM viewer may hide the Series Description and Image Comments, and a
screenshot of a slice carries no header at all; a mark in the pixels travels with every copy.
The glyphs are a small built-in 5 x 7 bitmap font (no font files, no matplotlib), drawn at an
integer scale so the mark stays sharp; each glyph is outlined with dark pixels so it reads on
bright tissue as well as on air.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 5 x 7 glyphs ('#' = on) of the letters the mark uses.
_GLYPHS = {
    "S": (" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "),
    "Y": ("#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "),
    "N": ("#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #"),
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
    "H": ("#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "E": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"),
    "I": (" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "C": (" ####", "#    ", "#    ", "#    ", "#    ", "#    ", " ####"),
    " ": ("     ",) * 7,
}
MARK_TEXT = "SYNTHETIC"
#: HU of the mark's letters (white under any CT window) and of their outline (black).
MARK_HU, OUTLINE_HU = 3000, -1000


def text_bitmap(text: str = MARK_TEXT, scale: int = 1) -> np.ndarray:
    """Boolean [rows, cols] bitmap of ``text`` (letters of ``_GLYPHS`` only), one blank column
    between letters, each pixel repeated ``scale`` times in both directions."""
    unknown = sorted({c for c in text.upper() if c not in _GLYPHS})
    if unknown:
        raise ValueError(f"the burn-in font has no glyph for {unknown}; use letters of {MARK_TEXT!r}")
    columns = []
    for n, char in enumerate(text.upper()):
        glyph = np.array([[c == "#" for c in row] for row in _GLYPHS[char]], dtype=bool)
        if n:
            columns.append(np.zeros((7, 1), dtype=bool))
        columns.append(glyph)
    bitmap = np.concatenate(columns, axis=1)
    return np.kron(bitmap, np.ones((scale, scale), dtype=bool)).astype(bool)


def mark_scale(rows: int) -> int:
    """Glyph scale for an image of ``rows`` rows: the letters are about 3-5 % of its height."""
    return max(1, int(rows) // 128)


def burn_in(slice_rc: np.ndarray, text: str = MARK_TEXT) -> np.ndarray:
    """A copy of a 2D slice ``[row, column]`` (as displayed: row 0 at the top) with ``text``
    burned into its top-left corner. The input is not modified; a slice too small for the
    mark is returned unchanged (copied)."""
    out = np.array(slice_rc, copy=True)
    scale = mark_scale(out.shape[0])
    bitmap = text_bitmap(text, scale)
    margin = 2 * scale
    h, w = bitmap.shape
    if out.shape[0] < h + 2 * margin or out.shape[1] < w + 2 * margin:
        return out
    region = out[margin - scale: margin + h + scale, margin - scale: margin + w + scale]
    padded = np.pad(bitmap, scale)
    outline = ndimage.binary_dilation(padded, iterations=scale) & ~padded
    region[outline] = OUTLINE_HU
    region[padded] = MARK_HU
    return out


def mark_mask(rows: int, cols: int, text: str = MARK_TEXT) -> np.ndarray:
    """Boolean [rows, cols] mask of every pixel ``burn_in`` may change (letters and outline)."""
    probe = burn_in(np.zeros((rows, cols), dtype=np.int16), text)
    return probe != 0


__all__ = ["MARK_TEXT", "MARK_HU", "OUTLINE_HU", "burn_in", "mark_mask", "mark_scale", "text_bitmap"]
