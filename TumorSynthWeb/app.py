"""``WebSession``: one browser tab's TumorSynth: its own MRML scene (``SlicerApp``), Slicer's
views, the page, and the click-to-tumor flow of the Slicer module on the same logic
(``TumorSynthSlicer``: ``TumorSession`` outputs and undo, ``placement_logic``, ``click_logic``,
``catalogue_logic`` menus from the engine catalogue).

Every failure is shown on the page (``messages``), never swallowed: engine errors (a click
outside the organ, a missing dependency) as errors, each tumor report's warnings as warnings.
"""
from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from trame.app import TrameApp
from trame_slicer.core import LayoutManager, SlicerApp

from TumorSynthLib.anatomy.organs import CONVENTIONS
from TumorSynthSlicer import catalogue_logic, click_logic, output_logic, placement_logic, table_logic

from . import export, probe, scene, ui
from .views import refit_on_resize, register_views
from .placing import PlacementRunner, Progress

log = logging.getLogger(__name__)
LAYOUT = "Axial Primary"
MAX_MESSAGES = 6


class WebSession(TrameApp):
    """One client's page and scene. ``options``: ``allow_paths`` (open files by path on the
    server), ``test_hooks`` (the ``ts_probe`` trigger), ``phantom_seed``."""

    def __init__(self, server: Any = None, *, allow_paths: bool = True, test_hooks: bool = False,
                 start_phantom: bool = True) -> None:
        super().__init__(server=server)
        self.slicer = SlicerApp()
        register_views(self.slicer.view_manager, self.server)
        self.layouts = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layouts.register_layout_dict({LAYOUT: LayoutManager.default_grid_configuration()[LAYOUT]})
        self.layouts.set_layout(LAYOUT)
        self.case: scene.Case | None = None
        self.session: output_logic.TumorSession | None = None
        self.runner = PlacementRunner(self._show_progress)
        self._uploads = tempfile.TemporaryDirectory(prefix="tumorsynth-upload-")
        self._uploaded: dict[str, Path] = {}
        self._catalogue = catalogue_logic.engine_catalogue()
        self.click = click_logic.click_node(self.slicer.scene)
        self.click.AddObserver(self.click.PointPositionDefinedEvent, self._on_point)
        self._init_state(allow_paths)
        self._register(test_hooks)
        self.ui = ui.build_page(self.server, self.layouts, self._catalogue["effects"])
        for view in self._slice_views():
            view.set_visible_in_3d(True)
            refit_on_resize(view)
        if start_phantom:
            self.load_phantom()

    # -- state and controllers ----------------------------------------------------------------
    def _init_state(self, allow_paths: bool) -> None:
        methods = catalogue_logic.panel_methods(self._catalogue)
        self.state.update({
            "organs": catalogue_logic.panel_organs(self._catalogue),
            "stages": catalogue_logic.panel_stages(self._catalogue),
            "methods": [{"title": name, "value": name, "disabled": not ok,
                         "subtitle": "" if ok else reason} for name, (ok, reason) in methods.items()],
            "conventions": list(CONVENTIONS),
            "path_open_allowed": allow_paths, "messages": [], "tumors": [], "busy": False,
            "growing": False, "progress_text": "", "progress_value": None, "can_undo": False,
            "tumor_count": 0, "case_source": "", "method_live": False, "last_click_ras": None,
        })
        self.state.change("organ", "stage")(self._on_size_choice)
        self.state.change("method")(self._on_method)
        self.state.change("place_mode")(self._on_place_mode)

    def _register(self, test_hooks: bool) -> None:
        triggers = {"ts_load_phantom": self.load_phantom, "ts_open": self.open_input,
                    "ts_upload": self.upload, "ts_undo": self.undo, "ts_clear": self.clear,
                    "ts_download": self.download, "ts_stop_growth": self.runner.request_stop}
        if test_hooks:
            triggers["ts_probe"] = self.probe
        for name, function in triggers.items():
            self.ctrl.trigger(name)(function)

    def _on_size_choice(self, organ: str = "liver", stage: str = "early", **_: Any) -> None:
        lo, hi = catalogue_logic.diameter_range(stage, organ, self._catalogue)
        self.state.diameter_min, self.state.diameter_max = lo, hi
        if not lo <= float(self.state.diameter or 0) <= hi:
            self.state.diameter = round((lo * hi) ** 0.5, 1)

    def _on_method(self, method: str = "handcrafted", **_: Any) -> None:
        self.state.method_live = catalogue_logic.is_live(method, self._catalogue)

    def _on_place_mode(self, place_mode: bool = True, **_: Any) -> None:
        self._set_place_mode(bool(place_mode) and not self.runner.busy)

    def _set_place_mode(self, enabled: bool) -> None:
        if enabled and self.case is not None:
            self.slicer.markups_logic.place_node(self.click, persistent=True)
        else:
            self.slicer.markups_logic.disable_place_mode()

    # -- messages -------------------------------------------------------------------------------
    def say(self, text: str, kind: str = "info") -> None:
        """Show a message on the page ("error", "warning", "info", "success")."""
        if kind == "error":
            log.info("shown to the user: %s", text)
        self.state.messages = ([{"type": kind, "text": str(text)}] + list(self.state.messages))[:MAX_MESSAGES]

    def _show_progress(self, progress: Progress | None) -> None:
        with self.state:
            self.state.busy = progress is not None
            self.state.growing = bool(progress and progress.fraction is not None)
            self.state.progress_text = progress.text if progress else ""
            self.state.progress_value = progress.fraction if progress else None

    # -- input ----------------------------------------------------------------------------------
    def load_phantom(self) -> None:
        self._load(lambda s: scene.load_phantom(s, int(self.state.phantom_seed or 0)))

    def open_input(self) -> None:
        if self._uploaded.get("ct"):
            ct, labels = self._uploaded["ct"], self._uploaded.get("labels")
        elif self.state.path_open_allowed and self.state.ct_path:
            ct, labels = self.state.ct_path, self.state.labels_path or None
        else:
            self.say("Give a CT path or upload a CT first.", "warning")
            return
        self._load(lambda s: scene.load_files(s, ct, labels, self.state.convention))

    def upload(self, which: str, files: list[dict[str, Any]] | None) -> None:
        """Keep an uploaded CT or labels file (opened with 'Open')."""
        from trame.app.file_upload import ClientFile

        try:
            if not files:
                self._uploaded.pop(which, None)
                return
            client = ClientFile(files[0])
            path = Path(self._uploads.name) / f"{which}-{scene.upload_name(client.name)}"
            path.write_bytes(client.content)
            self._uploaded[which] = path
            self.say(f"Uploaded {client.name}: press Open.", "info")
        except Exception as exc:
            self.say(str(exc), "error")

    def _load(self, load: Any) -> None:
        if self.runner.busy:
            self.say(self.runner.gate.message, "warning")
            return
        try:
            case = load(self.slicer.scene)
        except Exception as exc:
            self.say(f"Could not open the input: {exc}", "error")
            return
        self._forget_case()
        self.case, self.session = case, output_logic.TumorSession(case.ct)
        scene.show_case(self._slice_views(), case.ct)
        self.slicer.display_manager.reset_views()
        self._set_place_mode(bool(self.state.place_mode))
        self.state.case_source = case.source
        self._refresh_result()
        note = "" if case.labels is not None else " No organ labels: the organ is grown from the click."
        self.say(f"Opened {case.source}. Choose the organ, then click inside it.{note}", "info")

    def _forget_case(self) -> None:
        if self.session is not None:
            self.session.removeOutputs()
        if self.case is not None:
            output_logic.remove_node(self.case.ct)
        self.case = self.session = None

    # -- placing --------------------------------------------------------------------------------
    def _on_point(self, caller: Any, _event: Any) -> None:
        ras = click_logic.take_click(caller)
        if ras is None or self.session is None:
            return
        self.state.last_click_ras = ras
        if not self.runner.gate.accept():
            self.say(self.runner.gate.message, "warning")
            return
        asyncio.get_event_loop().create_task(self._place(ras))

    def request(self) -> placement_logic.TumorRequest:
        """The tumor the panel describes; each catalogue effect set to on / off is forced."""
        s = self.state
        options = {effect: s[effect] == "on" for effect in self._catalogue["effects"]
                   if s[effect] in ("on", "off")}
        return placement_logic.TumorRequest(organ=s.organ, stage=s.stage, diameterMm=float(s.diameter),
                                            method=s.method, seed=int(s.seed or 0), options=options)

    async def _place(self, ras: list[float]) -> None:
        self._set_place_mode(False)
        live = bool(self.state.live) and catalogue_logic.is_live(self.state.method, self._catalogue)
        try:
            mask = self.case.organ_mask(self.state.organ)
            placement = await self.runner.place(self.session, ras, self.request(), mask, live)
            self._announce(placement)
        except Exception as exc:
            log.debug("placement failed", exc_info=True)
            self.say(str(exc), "error")
        finally:
            self._set_place_mode(bool(self.state.place_mode))
            self._refresh_result()

    def _announce(self, placement: placement_logic.Placement) -> None:
        scene.outline_segments(self.session.segmentation)
        scene.show_case(self._slice_views(), self.session.outputVolume)
        sizes = ", ".join(f"{r.get('diameter_measured_mm', 0):.1f} mm" for r in placement.reports)
        self.say(f"Placed {len(placement.reports)} tumor(s): {sizes} (synthetic).", "success")
        for report in placement.reports:
            for warning in report.get("warnings") or []:
                self.say(str(warning), "warning")

    # -- result ---------------------------------------------------------------------------------
    def _refresh_result(self) -> None:
        session = self.session
        rows = []
        if session is not None:
            for index, report in enumerate(session.reports, start=1):
                row = table_logic.tumor_row(f"Tumor {index}", report)
                rows.append({"name": row["Tumor"], "organ": row["Organ"], "method": row["Method"],
                             "stage": row["Stage"], "diameter": _fmt(row["Diameter"]),
                             "r": _fmt(row["R"]), "a": _fmt(row["A"]), "s": _fmt(row["S"])})
        with self.state:
            self.state.tumors = rows
            self.state.tumor_count = session.tumorCount if session else 0
            self.state.can_undo = bool(session and session.canUndo)

    def undo(self) -> None:
        self._edit(lambda: self.session.undo(), "Last tumor removed.")

    def clear(self) -> None:
        self._edit(lambda: self.session.clear(), "All tumors removed.")

    def _edit(self, action: Any, done: str) -> None:
        if self.runner.busy or self.session is None:
            self.say(self.runner.gate.message or "Open a CT first.", "warning")
            return
        try:
            action()
            self.say(done, "info")
        except Exception as exc:
            self.say(str(exc), "error")
        self._refresh_result()

    def download(self) -> Any:
        """The zip for ``utils.download`` (None, with a message, when there is nothing yet)."""
        try:
            data = export.session_zip(self.session, self.case.source)
        except Exception as exc:
            self.say(f"Download failed: {exc}", "error")
            return None
        return self.server.protocol.addAttachment(memoryview(data))

    def probe(self, target: str) -> dict[str, Any]:
        """Test hook: where ``target`` (an organ, or "outside") is in each slice view."""
        result = probe.probe(self.case, self._slice_views(), target)
        for view in self._slice_views():
            view.schedule_render()
        return result

    def _slice_views(self) -> list[Any]:
        return self.slicer.view_manager.get_slice_views()

    def close(self) -> None:
        """Free the scene of a closed tab."""
        self.runner.request_stop()
        self._uploads.cleanup()
        self.slicer.scene.Clear(1)


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return ""


__all__ = ["WebSession"]
