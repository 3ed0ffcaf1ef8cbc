"""What the web tests do on a page: ask the test hook where an organ is, click there like a
user, read the axial view's pixels and the page's messages and table."""
from __future__ import annotations

import io
from typing import Any

import numpy as np

AXIAL = "img.image-display-area >> nth=0"
#: The first tumor's colour (``segment_logic.TUMOR_COLORS[0]``) as 8-bit RGB.
TUMOR_RGB = (242, 89, 51)


def probe(page: Any, target: str) -> dict[str, Any]:
    """The test hook's answer: target RAS, voxel and position in each slice view."""
    return page.evaluate("target => window.trame.trigger('ts_probe', [target])", target)


def axial_pixels(page: Any) -> np.ndarray:
    """The axial view as the user sees it: (rows, cols, 3) uint8."""
    from PIL import Image

    png = page.locator(AXIAL).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def click_in_axial(page: Any, where: dict[str, Any]) -> tuple[float, float]:
    """Click at the probe's axial position; returns the view-relative (x, y) clicked."""
    box = page.locator(AXIAL).bounding_box()
    view = where["views"]["axial"]
    assert abs(box["width"] - view["width"]) <= 2 and abs(box["height"] - view["height"]) <= 2, \
        (box, view)                            # the server renders at the browser's size
    page.mouse.click(box["x"] + view["x"], box["y"] + view["y"])
    return view["x"], view["y"]


def state(page: Any, name: str) -> Any:
    return page.evaluate("name => window.trame.state.get(name)", name)


def wait_for_messages(page: Any, count: int) -> list[dict[str, str]]:
    page.wait_for_function(f"() => window.trame.state.get('messages').length >= {count}")
    return state(page, "messages")


def wait_for_tumors(page: Any, count: int) -> list[dict[str, str]]:
    page.wait_for_function(f"() => window.trame.state.get('tumors').length == {count}"
                           " && !window.trame.state.get('busy')")
    page.wait_for_timeout(700)                 # the views render the new outputs
    return state(page, "tumors")


def outline_mask(pixels: np.ndarray) -> np.ndarray:
    """Pixels of the first tumor's outline colour (grey CT pixels have R = G = B)."""
    rgb = pixels.astype(int)
    target = np.asarray(TUMOR_RGB)
    return (np.abs(rgb - target).sum(axis=2) < 90) & (rgb[..., 0] - rgb[..., 2] > 100)


def inside_outline(outline: np.ndarray) -> np.ndarray:
    """Pixels well inside the outline: within half the outline's smaller half-size of its
    centre, outline pixels excluded."""
    rows, cols = np.nonzero(outline)
    centre = rows.mean(), cols.mean()
    radius = 0.5 * min(np.ptp(rows), np.ptp(cols)) / 2.0
    yy, xx = np.indices(outline.shape)
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2) & ~outline


def page_text(page: Any, selector: str) -> str:
    return page.inner_text(selector)
