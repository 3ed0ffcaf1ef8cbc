"""``tumorsynth train-adversarial``: train the ``adversarial`` appearance's generator."""
from __future__ import annotations

import argparse
from typing import Any

from ..core.errors import InputError
from ..core.events import event_session
from ..core.files import prepare_output_folder
from ..synthesis.learned.gan import GanConfig
from .common import EXIT_INTERRUPTED, EXIT_OK, command_parser, finite_float

EPILOG = """what it does (after FreeTumor, methods.md section 4): a small generator (MONAI UNet, one
output channel per organ: liver, pancreas, kidney) learns an intensity-change map D in [-1, 1];
a synthetic tumor is a procedural shape darkened by D * max(organ median - 10, 25) HU x texture.
G is trained against a voxel-wise discriminator (background / real tumor / synthetic tumor) and
a FROZEN segmentation model (--segmenter, e.g. the shipped `default`):
L_G = 0.1 L_adv + L_seg, L_D as in the reference; Adam lr 1e-4, betas (0, 0.999).

data: --data holds image/label pairs WITH tumors (the "real" tumors), --healthy pairs without
(shapes are drawn in their organs; default: the organs of --data). Folders of NAME.nii.gz +
NAME_label.nii.gz, imagesTr/+labelsTr/, one folder per case, or a datalist JSON; labels in any
convention (--labels).

outputs in --out: generator.pt (weights only: what `tumorsynth models add` registers and
`--tumor "method=adversarial,adversarial_model=..."` uses), last.pt (all training state; every
--save-every steps, at the end and on Ctrl-C / SIGTERM), history.json, events.jsonl.
--resume continues from last.pt with the same step count and the same batches.

examples:
  tumorsynth train-adversarial --data real_tumors/ --healthy healthy/ --segmenter default \\
      --max-minutes 60 --out runs/gan1
  tumorsynth train-adversarial --data real_tumors/ --healthy healthy/ --out runs/gan1 --resume
  tumorsynth models add runs/gan1/generator.pt --id my-gan
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=liver,method=adversarial,adversarial_model=my-gan,diameter=25" --out case/"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "train-adversarial", help="train the adversarial appearance's generator (GAN)",
        description="Train the generator of the `adversarial` appearance against a voxel-wise "
                    "discriminator and a frozen segmentation model.", epilog=EPILOG, run=run)
    p = parser.add_argument
    p("--data", required=True, help="image/label pairs with (real) tumors")
    p("--healthy", default=None, help="image/label pairs without tumors (default: --data)")
    p("--segmenter", default="default", help="frozen segmentation model: id or .pt (default: default)")
    p("--out", required=True, help="run folder")
    p("--labels", default="auto", help="label convention of the pairs (default: auto)")
    p("--batch", type=int, default=2, help="synthetic and real crops per step (default 2)")
    p("--patch", type=int, default=48, help="crop side in 1.5 mm voxels, multiple of 4 (default 48)")
    p("--channels", default="16,32,64", help="generator widths (default 16,32,64)")
    p("--lr", type=finite_float, default=1e-4, help="Adam learning rate (default 1e-4)")
    p("--max-steps", type=int, default=1000, help="stop after this many steps (default 1000)")
    p("--max-minutes", type=finite_float, default=None, help="stop after this many minutes")
    p("--save-every", type=int, default=50, help="write last.pt every N steps (default 50)")
    p("--resume", action="store_true", help="continue the run in --out from last.pt")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..generative.adversarial_train import AdversarialConfig, train_adversarial

    out = prepare_output_folder(args.out)
    with event_session(args.events, desc="train-adversarial", log_path=out / "events.jsonl") as events:
        try:
            channels = tuple(int(c) for c in args.channels.split(","))
        except ValueError as exc:
            raise InputError(f"--channels: expected comma-separated integers, got '{args.channels}'") from exc
        if len(channels) < 2 or args.patch % 2 ** (len(channels) - 1) or args.patch < 16:
            raise InputError(f"--patch {args.patch} must be >= 16 and a multiple of {2 ** (len(channels) - 1)} "
                             f"for --channels {args.channels}")
        strides = (2,) * (len(channels) - 1)
        gan = GanConfig(channels=channels, strides=strides,
                        disc_channels=tuple(max(4, c // 2) for c in channels), patch=args.patch)
        cfg = AdversarialConfig(data=args.data, healthy=args.healthy, out=str(out), segmenter=args.segmenter,
                                labels=args.labels, gan=gan.to_dict(), batch=args.batch, lr=args.lr,
                                max_steps=args.max_steps, max_minutes=args.max_minutes,
                                save_every=args.save_every, seed=args.seed, device=args.device,
                                resume=args.resume, trained_on=f"--data {args.data} --healthy {args.healthy}")
        try:
            result = train_adversarial(cfg, events)
        except Exception as exc:
            events.error(str(exc), error=type(exc).__name__, log_only=True)
            raise
        if result.stopped == "signal":
            events.log(f"stopped at step {result.step}; last.pt saved; continue with --resume")
            return EXIT_INTERRUPTED
        events.log(f"generator: {result.generator} (step {result.step}); register it with "
                   f"`tumorsynth models add {result.generator}`")
    return EXIT_OK
