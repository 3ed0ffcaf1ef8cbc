"""``tumorsynth readerstudy make|quiz|score``: a blinded visual Turing test, a teaching quiz, their statistics."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.events import event_session
from ..datasets.quiz import QuizConfig, make_quiz
from ..datasets.quiz_score import (
    is_quiz_key,
    quiz_text,
    read_quiz_answers,
    read_quiz_key,
    score_quiz,
    write_quiz_scores,
)
from ..datasets.readerstudy import StudyConfig, make_study
from ..datasets.readerstudy_report import write_score_files
from ..datasets.readerstudy_score import (
    read_answers,
    read_key,
    reader_name,
    score_study,
)
from .common import add_common_flags, finite_float

EPILOG = """make: every case (real tumor, healthy real scan, synthetic tumor) is resampled to 1 mm
voxels, cropped to the same 64 mm cube around the lesion (healthy scans: a point >= 16 mm inside
an organ), stored as int16 with identity direction and zero origin, named case-001 ... in a
random order, with the same neutral "may contain synthetic content" note in every header and
sidecar. Study folder: cases/, answers-<reader>.csv (case_id, answer real|synthetic|unsure,
confidence 1-5, reading_time_s), study.json, README.txt. The key goes to --key (default
<out>-key.json beside the folder), never inside it: hand readers the folder only.

score: per reader (and pooled), per organ and per lesion size: sensitivity, specificity and
accuracy with 95 % Wilson intervals, with positives = real (Pixel2Cancer, DiffTumor) and with
positives = synthetic (FreeTumor); Fleiss' kappa between readers; the share of synthetic cases
called real. Unsure answers are left out by default (--unsure wrong counts them as errors);
blank rows are never scored. Writes scores.csv, agreement.csv, readers.csv, scores.json and
scores.png into --out.

examples:
  tumorsynth readerstudy make --real real-tumors/ --real healthy/ --synthetic synth/ \\
      --readers alice,bob,carol --out study/          (key: study-key.json)
  tumorsynth readerstudy make --real healthy/ --real real-tumors/ --generate 2 --organ liver \
      --out study/       (2 synthetic variants of each healthy scan, made first)
  tumorsynth readerstudy make --real kits/ --organ kidney --labels kits \\
      --synthetic demo-output/ --format dicom --out kidney-study/ --key secret/key.json
  tumorsynth readerstudy score study/answers-*.csv --key study-key.json --out study-scores/

quiz: "find the malignant one" teaching cases: each case is one scan (healthy --input cases, or
the built-in phantom) with --lesions synthetic lesions, --malignant of them malignant tumors
(--method) and the others benign distractors (--distractors: cyst, hemangioma), all sizes drawn
from one --diameter range, numbered 1..k in a random order. Quiz folder: cases/case-NNN/
image.nii.gz, lesions.nii.gz (lesion numbers), lesions.csv (centres); answers-<reader>.csv
(case_id, lesion, answer malignant|benign|unsure, confidence, reading_time_s); quiz.json;
README.txt. The key (each lesion's type) goes beside the folder; 'score' with that key gives
sensitivity and specificity for malignancy per reader and per lesion type (quiz-scores.csv/.json).
  tumorsynth readerstudy quiz --cases 10 --lesions 3 --malignant 1 --readers alice,bob --out quiz/
  tumorsynth readerstudy quiz --input healthy/ --organ liver,kidney --distractors cyst --out q2/
  tumorsynth readerstudy score quiz/answers-alice.csv --key quiz-key.json --out quiz-scores/"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "readerstudy", help="visual Turing test (blinded study folder, then scores) and teaching quizzes",
        description="Reader studies: 'make' builds a blinded real-vs-synthetic study folder with "
                    "answer sheets and a separate key; 'quiz' builds a 'find the malignant one' "
                    "teaching quiz (tumors among benign distractors) and its key; 'score' computes "
                    "the readers' figures of either.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    make = actions.add_parser("make", help="build a blinded study folder and its key", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(make)
    m = make.add_argument
    m("--real", action="append", default=[], metavar="DATA",
      help="real image/label pairs (folder or datalist; repeatable): cases with tumors give tumor "
           "crops, cases without give healthy crops")
    m("--synthetic", action="append", default=[], metavar="DIR",
      help="synthetic cases written by synth / generate / demo (repeatable)")
    m("--out", required=True, type=Path, help="study folder to create (handed to readers)")
    m("--key", type=Path, default=None, help="key file (default: <out>-key.json beside --out)")
    m("--readers", default="reader-1", help="comma-separated reader names (default reader-1)")
    m("--organ", default="liver,pancreas,kidney", help="organs whose lesions are used (default all three)")
    m("--lesions", choices=("largest", "each"), default="largest",
      help="per case: the largest lesion or each lesion (default largest)")
    m("--labels", default="auto", help="label convention of --real: auto (default), totalseg, msd, lits, kits, binary")
    m("--no-healthy", action="store_true", help="leave out real cases without a tumor")
    m("--min-diameter", type=finite_float, default=5.0, help="ignore real tumor components below this diameter in mm (default 5)")
    m("--format", choices=("nifti", "dicom"), default="nifti", help="case files: nifti (default) or dicom series")
    m("--generate", type=int, default=0, metavar="N",
      help="also make N synthetic variants per healthy --real case and organ (written to <out>-generated/)")
    m("--method", default="handcrafted", help="synthesis method of --generate (default handcrafted)")
    make.set_defaults(run=run_make)

    quiz = actions.add_parser("quiz", help="'find the malignant one' teaching quiz and its key",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(quiz)
    q = quiz.add_argument
    q("--out", required=True, type=Path, help="quiz folder to create (handed to learners)")
    q("--input", action="append", default=[], metavar="DATA",
      help="healthy image/label pairs (folder or datalist; repeatable); default: the built-in phantom")
    q("--cases", type=int, default=4, help="number of cases (default 4)")
    q("--lesions", type=int, default=3, help="lesions per case (default 3)")
    q("--malignant", type=int, default=1, help="malignant tumors per case, the rest distractors (default 1)")
    q("--organ", default="liver", help="organs the lesions go into, comma-separated (default liver; "
      "hemangiomas go into the liver only)")
    q("--distractors", default="cyst,hemangioma", help="benign lesion types, comma-separated (default cyst,hemangioma)")
    q("--method", default="handcrafted", help="synthesis method of the malignant tumors (default handcrafted)")
    q("--diameter", default="12:30", metavar="LO:HI", help="lesion diameters in mm, the same range for "
      "every type (default 12:30)")
    q("--labels", default="totalseg", help="label convention of --input (default totalseg)")
    q("--readers", default="reader-1", help="comma-separated reader names (default reader-1)")
    q("--key", type=Path, default=None, help="key file (default: <out>-key.json beside --out)")
    q("--small-phantom", action="store_true", help="coarser built-in phantom (faster)")
    quiz.set_defaults(run=run_quiz)

    score = actions.add_parser("score", help="score answer sheets against the key", epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(score)
    s = score.add_argument
    s("answers", nargs="+", type=Path, help="answer sheets (answers-<reader>.csv)")
    s("--key", required=True, type=Path, help="the key written by 'make' or 'quiz'")
    s("--out", required=True, type=Path, help="folder for scores.csv, scores.json, scores.png, ...")
    s("--unsure", choices=("exclude", "wrong"), default="exclude",
      help="unsure answers: left out of the 2x2 tables (default) or counted as errors")
    score.set_defaults(run=run_score)
    return parser


def run_make(args: argparse.Namespace) -> int:

    config = StudyConfig(out=str(args.out), real=[str(p) for p in args.real], synthetic=[str(p) for p in args.synthetic],
                         readers=[r.strip() for r in args.readers.split(",") if r.strip()],
                         organs=args.organ, lesions=args.lesions, labels=args.labels,
                         include_healthy=not args.no_healthy, min_diameter_mm=args.min_diameter,
                         fmt=args.format, key=None if args.key is None else str(args.key), seed=args.seed,
                         generate=args.generate, method=args.method)
    with event_session(args.events, desc="readerstudy make") as events:
        summary = make_study(config, events)
        events.log(f"study of {summary['cases']} cases ({summary['real-tumor']} real tumors, "
                   f"{summary['real-healthy']} healthy real, {summary['synthetic']} synthetic) in "
                   f"{summary['out']}; answer sheets for {', '.join(summary['readers'])}; "
                   f"key: {summary['key']} (keep it away from the readers)")
    return 0


def _names(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _diameter_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(p) for p in str(text).split(":"))
    except ValueError:
        raise InputError(f"--diameter must be LO:HI in mm (e.g. 12:30), got '{text}'") from None
    return lo, hi


def run_quiz(args: argparse.Namespace) -> int:
    config = QuizConfig(out=str(args.out), inputs=[str(p) for p in args.input], cases=args.cases,
                        lesions=args.lesions, malignant=args.malignant, organs=_names(args.organ),
                        distractors=_names(args.distractors), method=args.method,
                        diameter_mm=_diameter_range(args.diameter), labels=args.labels,
                        readers=_names(args.readers), key=None if args.key is None else str(args.key),
                        seed=args.seed, small_phantom=args.small_phantom)
    with event_session(args.events, desc="readerstudy quiz") as events:
        summary = make_quiz(config, events)
        events.log(f"quiz of {summary['cases']} cases, {summary['lesions']} lesions ({summary['malignant']} "
                   f"malignant, {summary['benign']} benign) in {summary['out']}; answer sheets for "
                   f"{', '.join(summary['readers'])}; key: {summary['key']} (keep it away from the learners)")
    return 0


def run_score(args: argparse.Namespace) -> int:
    """Score a reader study or, when ``--key`` is a quiz key, a quiz (same sheets and flags)."""
    quiz = is_quiz_key(args.key)
    read_answer_sheet, score, write, text = ((read_quiz_answers, score_quiz, write_quiz_scores, quiz_text) if quiz
                                             else (read_answers, score_study, write_score_files, score_text))
    key = read_quiz_key(args.key) if quiz else read_key(args.key)
    answers = {}
    for path in args.answers:
        name = reader_name(path)
        if name in answers:
            raise InputError(f"two answer sheets for reader '{name}'; name them answers-<reader>.csv")
        answers[name] = read_answer_sheet(path, key)
    with event_session(args.events, total=1, desc="readerstudy score") as events:
        scores = score(key, answers, unsure=args.unsure)
        paths = write(args.out, scores, {"key": str(args.key), "answers": [str(p) for p in args.answers]})
        events.log(text(scores))
        events.done(1, **{k: str(v) for k, v in paths.items()})
    return 0


def score_text(scores: dict[str, Any]) -> str:
    """Accuracy and the Turing-test headline per reader (stderr)."""
    lines = []
    for row in scores["rows"]:
        if row["positive"] == "real" and row["group"] == "all":
            acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.2f} [{row['accuracy_lo']:.2f}, {row['accuracy_hi']:.2f}]"
            lines.append(f"{row['reader']}: accuracy {acc} on {row['n_answered']} answered of {row['n_cases']}")
    for name, info in sorted(scores["readers"].items()):
        p = info["synthetic_called_real"][0]
        if p is not None:
            lines.append(f"{name}: called {100 * p:.0f} % of the synthetic cases real")
    kappa = scores["agreement"]["fleiss_kappa"]
    if kappa is not None:
        lines.append(f"Fleiss' kappa {kappa:.3f} over {scores['agreement']['n_cases']} cases")
    return "\n".join(lines)
