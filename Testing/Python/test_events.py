"""The JSON-lines event protocol: shape of events, strict JSON, stdout discipline, ETA."""
from __future__ import annotations

import io
import json
import sys

import pytest

from TumorSynthLib.core.errors import InputError
from TumorSynthLib.core.events import (
    EVENT_KINDS,
    PROTOCOL_VERSION,
    EventStream,
    event_session,
    format_event,
    make_event,
    parse_event,
)

REQUIRED = ("v", "event", "time", "step", "total", "elapsed_s", "eta_s")


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_every_kind_carries_the_common_fields():
    out = io.StringIO()
    stream = EventStream("jsonl", total=10, stdout=out, stderr=io.StringIO())
    stream.start(0, organ="liver")
    stream.progress(1, loss=0.5, lr=1e-3)
    stream.validation(2, {"tumor_dsc": 0.4})
    stream.checkpoint(2, "/tmp/last.pt", kind="last")
    stream.warning("cut by the field of view", tumor=1)
    stream.done(3)
    stream.error("boom")
    events = _lines(out)
    assert [e["event"] for e in events] == list(EVENT_KINDS)
    for e in events:
        assert all(k in e for k in REQUIRED)
        assert e["v"] == PROTOCOL_VERSION and e["total"] == 10
        assert e["time"].endswith("Z")
    assert events[1]["loss"] == 0.5 and events[2]["metrics"] == {"tumor_dsc": 0.4}
    assert events[3]["path"] == "/tmp/last.pt" and events[6]["message"] == "boom"
    assert events[4]["message"] == "cut by the field of view" and events[4]["tumor"] == 1


def test_nan_and_numpy_values_become_strict_json():
    np = pytest.importorskip("numpy")
    line = format_event(make_event("progress", step=np.int64(3), loss=float("nan"),
                                   metrics={"dsc": np.float32(0.5), "nsd": float("inf")}))
    event = json.loads(line)  # strict: json.loads would accept NaN, so check the text too
    assert "NaN" not in line and "Infinity" not in line
    assert event["loss"] is None and event["metrics"] == {"dsc": 0.5, "nsd": None}
    assert event["step"] == 3


def test_parse_event_round_trip_and_rejections():
    line = format_event(make_event("done", step=5, total=5))
    assert parse_event(line)["event"] == "done"
    with pytest.raises(InputError):
        parse_event("hello world")
    with pytest.raises(InputError):
        parse_event(json.dumps({"v": 1, "event": "unknown"}))
    with pytest.raises(InputError, match="version"):
        parse_event(json.dumps({"v": 99, "event": "done"}))
    with pytest.raises(InputError):
        make_event("bogus")


def test_jsonl_session_keeps_stray_prints_off_stdout(capsys):
    with event_session("jsonl", total=2) as stream:
        print("a library talking")           # must land on stderr
        stream.log("human text")
        stream.progress(1, loss=1.0)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and parse_event(lines[0])["event"] == "progress"
    assert "a library talking" in captured.err and "human text" in captured.err
    assert sys.stdout is not None


def test_human_mode_writes_nothing_on_stdout_and_logs_to_file(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    log = tmp_path / "events.jsonl"
    stream = EventStream("none", total=3, stdout=out, stderr=err, log_path=log)
    stream.start(0)
    for step in (1, 2, 3):
        stream.progress(step, loss=1.0 / step)
    stream.done(3)
    assert out.getvalue() == ""
    assert "3/3" in err.getvalue()            # the tqdm bar
    assert [e["step"] for e in _lines(io.StringIO(log.read_text()))] == [0, 1, 2, 3, 3]


def test_disabled_stream_is_silent(tmp_path):
    out = io.StringIO()
    stream = EventStream("jsonl", stdout=out, enabled=False, log_path=tmp_path / "x.jsonl")
    stream.start(0, total=1)
    stream.done(1)
    assert out.getvalue() == "" and not (tmp_path / "x.jsonl").exists()


def test_eta_from_rate_and_capped_by_deadline(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("TumorSynthLib.core.events.time.monotonic", lambda: clock[0])
    stream = EventStream("jsonl", stdout=io.StringIO())
    stream.start(10, total=110)               # a resumed run: the rate counts steps from 10
    clock[0] += 20.0
    assert stream.eta_s(20) == pytest.approx(180.0)
    stream.deadline_s = 50.0
    assert stream.eta_s(20) == pytest.approx(30.0)


def test_unknown_mode_is_refused():
    with pytest.raises(InputError, match="--events"):
        EventStream("xml")


def test_the_bar_follows_a_total_re_aimed_by_a_budget():
    err = io.StringIO()
    stream = EventStream("none", total=100000, stdout=io.StringIO(), stderr=err)
    stream.start(0)
    stream.progress(1)
    stream.total = 40                          # what a fitted schedule does
    stream.progress(2)
    stream.close()
    assert "2/40" in err.getvalue()


def test_run_sessions_of_a_killed_and_resumed_run(tmp_path):
    from TumorSynthLib.core.events import run_sessions

    lines = [make_event("start", step=0, total=100), make_event("progress", step=40, total=100, elapsed_s=80.0),
             make_event("start", step=25, total=100),                      # killed after step 40; resumed at 25
             make_event("progress", step=60, total=100, elapsed_s=70.0),
             make_event("done", step=100, total=100, elapsed_s=150.0, reason="max_steps"),
             make_event("start", step=100, total=100)]                     # a session that made no step
    path = tmp_path / "events.jsonl"
    path.write_text("".join(format_event(e) + "\n" for e in lines) + '{"v": 1, "event": "progr')   # killed mid-line
    sessions = run_sessions(path)
    assert [(s["from_step"], s["to_step"], s["loop_s"]) for s in sessions] == [(0, 40, 80.0), (25, 100, 150.0)]
    assert sessions[0]["reason"].startswith("no done event") and sessions[1]["reason"] == "max_steps"
