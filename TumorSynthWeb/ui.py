"""The page: Slicer's views (axial large, 3D / coronal / sagittal beside it) and a side panel
with the sections of the Slicer module: Input, Tumor, Place, Result, and the messages.

Only layout here: every action is a trame controller or trigger of ``app.WebSession``.
Elements a test or a user's script needs carry ``id="ts-..."``.
"""
from __future__ import annotations

from typing import Any, Sequence

from trame.widgets import html
from trame_vuetify.ui.vuetify3 import SinglePageWithDrawerLayout
from trame_vuetify.widgets import vuetify3 as v

SWITCH_ITEMS = ["auto", "on", "off"]


def build_page(server: Any, layout_manager: Any, effects: Sequence[str]) -> Any:
    """Build the page of one session and return the layout; ``effects`` are the engine
    catalogue's effect names (one auto / on / off choice each)."""
    with SinglePageWithDrawerLayout(server) as layout:
        layout.title.set_text("TumorSynth")
        with layout.toolbar:
            v.VSpacer()
            v.VChip("SYNTHETIC tumors - not for diagnosis", id="ts-synthetic-banner",
                    color="orange-darken-3", variant="flat", classes="mr-2")
            html.Div("{{ case_source }}", id="ts-case-source", classes="text-caption mr-4")
        with layout.drawer as drawer:
            drawer.width = 360
            with html.Div(classes="pa-3", style="overflow-y: auto;"):
                _messages()
                _input_section()
                _tumor_section(effects)
                _place_section()
                _result_section()
        with layout.content:
            with html.Div(style="position: relative; width: 100%; height: calc(100vh - 64px);",
                          id="ts-views"):
                layout_manager.initialize_layout_grid(layout)
    return layout


def _title(text: str) -> None:
    html.Div(text, classes="text-subtitle-1 font-weight-bold mt-3 mb-1")


def _messages() -> None:
    with html.Div(id="ts-messages"):
        v.VAlert(v_for="(m, i) in messages", key="i", type=("m.type",), text=("m.text",),
                 density="compact", classes="mb-1 ts-message", closable=True,
                 click_close="messages = messages.filter((_, j) => j !== i)")


def _input_section() -> None:
    _title("Input CT")
    with html.Div(classes="d-flex flex-wrap ga-2 align-center"):
        v.VBtn("Phantom", id="ts-load-phantom", click="trigger('ts_load_phantom')",
               disabled=("busy",), size="small", prepend_icon="mdi-human")
        v.VTextField(v_model=("phantom_seed", 0), label="seed", type="number", density="compact",
                     hide_details=True, style="max-width: 90px;")
    with html.Div(v_if="path_open_allowed"):
        v.VTextField(v_model=("ct_path", ""), label="CT path on the server (NIfTI, NRRD, DICOM folder)",
                     density="compact", hide_details=True, classes="mt-2", id="ts-ct-path")
        v.VTextField(v_model=("labels_path", ""), label="Organ labels path (optional)",
                     density="compact", hide_details=True, classes="mt-2", id="ts-labels-path")
    v.VFileInput(label="or upload a CT (.nii.gz, .nrrd)", density="compact", hide_details=True,
                 classes="mt-2", id="ts-upload-ct", show_size=True,
                 change="trigger('ts_upload', ['ct', $event.target.files])")
    v.VFileInput(label="and its organ labels (optional)", density="compact", hide_details=True,
                 classes="mt-2", id="ts-upload-labels", show_size=True,
                 change="trigger('ts_upload', ['labels', $event.target.files])")
    with html.Div(classes="d-flex ga-2 align-center mt-2"):
        v.VSelect(v_model=("convention", "totalseg"), items=("conventions", []), label="labels",
                  density="compact", hide_details=True, style="max-width: 140px;")
        v.VBtn("Open", id="ts-open", click="trigger('ts_open')", disabled=("busy",), size="small",
               prepend_icon="mdi-folder-open")


def _tumor_section(effects: Sequence[str]) -> None:
    _title("Tumor")
    v.VSelect(v_model=("organ", "liver"), items=("organs", []), label="Organ", density="compact",
              hide_details=True, id="ts-organ")
    v.VSelect(v_model=("stage", "early"), items=("stages", []), label="Stage", density="compact",
              hide_details=True, classes="mt-2", id="ts-stage")
    v.VSlider(v_model=("diameter", 15.0), min=("diameter_min", 8.0), max=("diameter_max", 20.0),
              step=0.5, label="Diameter (mm)", thumb_label="always", hide_details=True,
              classes="mt-6", id="ts-diameter")
    v.VSelect(v_model=("method", "handcrafted"), items=("methods", []), label="Method",
              density="compact", hide_details=True, classes="mt-2", id="ts-method",
              item_props=True)
    with html.Div(classes="d-flex flex-wrap ga-2 mt-2"):
        for key in effects:
            label = key.replace("_", " ").capitalize()
            v.VSelect(v_model=(key, "auto"), items=("switch_items", SWITCH_ITEMS), label=label,
                      density="compact", hide_details=True, style="max-width: 150px;")
    with html.Div(classes="d-flex ga-2 align-center mt-2"):
        v.VTextField(v_model=("seed", 0), label="Seed", type="number", density="compact",
                     hide_details=True, style="max-width: 110px;", id="ts-seed")
        v.VSwitch(v_model=("live", True), label="Live growth", density="compact",
                  hide_details=True, disabled=("!method_live",), color="primary")


def _place_section() -> None:
    _title("Place")
    v.VSwitch(v_model=("place_mode", True), label="Click in a slice view places a tumor",
              density="compact", hide_details=True, color="primary", id="ts-place-mode")
    html.Div("Last click: R {{ last_click_ras[0].toFixed(1) }}, A {{ last_click_ras[1].toFixed(1) }},"
             " S {{ last_click_ras[2].toFixed(1) }} mm", v_if="last_click_ras",
             classes="text-caption", id="ts-last-click")
    with html.Div(v_if="busy", id="ts-progress"):
        html.Div("{{ progress_text }}", classes="text-caption")
        v.VProgressLinear(model_value=("progress_value === null ? 0 : 100 * progress_value",),
                          indeterminate=("progress_value === null",), color="primary", height=6)
        v.VBtn("Stop growth", v_if="growing", click="trigger('ts_stop_growth')", size="small",
               classes="mt-1", id="ts-stop-growth")


def _result_section() -> None:
    _title("Result")
    with v.VTable(density="compact", id="ts-tumors"):
        with html.Thead(), html.Tr():
            for head in ("Tumor", "Organ", "Method", "Stage", "Diam. mm", "R", "A", "S"):
                html.Th(head)
        with html.Tbody():
            with html.Tr(v_for="row in tumors", key="row.name", classes="ts-tumor-row"):
                for key in ("name", "organ", "method", "stage", "diameter", "r", "a", "s"):
                    html.Td(f"{{{{ row.{key} }}}}", classes=f"ts-{key}")
    with html.Div(classes="d-flex flex-wrap ga-2 mt-2"):
        v.VBtn("Undo", id="ts-undo", click="trigger('ts_undo')", size="small",
               disabled=("busy || !can_undo",), prepend_icon="mdi-undo")
        v.VBtn("Clear", id="ts-clear", click="trigger('ts_clear')", size="small",
               disabled=("busy || !tumor_count",), prepend_icon="mdi-delete")
        v.VBtn("Download", id="ts-download", size="small", prepend_icon="mdi-download",
               disabled=("busy || !tumor_count",),
               click="utils.download('tumorsynth-case.zip', trigger('ts_download'), "
                     "'application/zip')")


def enable_client_modules(server: Any) -> None:
    """Load the client modules the page uses (Vuetify 3, remote-controlled areas) into a
    server that only serves the static files."""
    import trame_client.module as client_module
    from trame_rca import module as rca_module
    from trame_vuetify.module import v3

    client_module.setup(server)
    server.enable_module(v3)
    server.enable_module(rca_module)
