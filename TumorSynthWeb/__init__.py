"""TumorSynth in the browser: 3D Slicer's own slice and 3D views (MRML, through trame-slicer)
served to a web page, with the click-to-tumor flow of the Slicer module.

Run it with ``tumorsynth web`` (``pip install 'tumorsynth[web]'``). Nothing here is imported by
``TumorSynthLib``: the command imports this package only when it runs, so the engine and the
other commands work without trame.

Layers: ``server`` (one HTTP/WebSocket server, one ``WebSession`` per browser tab, each with
its own MRML scene) > ``app`` (``WebSession``: state, controllers) > ``ui`` (the page) and
``placing`` (engine work off the event loop) > ``scene`` (volumes into MRML), ``export``
(download zip), ``probe`` (test hooks) > ``TumorSynthSlicer`` (the Slicer module's node logic,
reused as is) > ``TumorSynthLib`` (the engine).
"""
