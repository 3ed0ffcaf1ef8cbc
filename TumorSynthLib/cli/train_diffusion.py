"""``tumorsynth train-diffusion``: train the mask-conditioned diffusion model of the
``diffusion`` appearance on image/label pairs with tumor labels."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..anatomy.organs import ORGANS, canonical_organ
from ..core.events import event_session
from ..generative.config import LR_SCHEDULES, DiffusionTrainConfig
from .common import EXIT_INTERRUPTED, EXIT_OK, command_parser

EPILOG = """data (--data): image/label pairs WITH TUMOR LABELS, in any layout `tumorsynth train` reads
(imagesTr/+labelsTr/, images/+labels/, one folder per case, NAME + NAME_label, or a datalist JSON
with "training" and optional "validation" lists) and any label convention (--labels: MSD / LiTS
tumor 2, KiTS tumor 2, TotalSegmentator-style 200 + organ id, ...). Every tumor component of
--organs becomes training patches: the model learns to fill the tumor (and its soft edge) from
the masked patch around it. Cases without tumors are skipped with a warning.

configurations (--config):
  pixel   the CPU default: 32^3 patches through the window [-175, 250] HU, a small MONAI
          DiffusionModelUNet (16, 32, 64) without attention levels, v-prediction, T = 4 sampled
          with every step (or --timesteps 100: DDIM 10 steps), ~1.75 M parameters
  latent  for GPUs and real data: AutoencoderKL (4x smaller latents, --ae-steps first), then a
          latent denoiser conditioned on the latent of the masked crop and the mask; 96^3 crops,
          T = 200 sampled with DDIM 50

outputs in --out: last.pt (every --ckpt-every steps and on Ctrl-C / SIGTERM), best.pt (the EMA
weights with the best held-out in-mask error ratio: register it with `tumorsynth models add`),
config.json, events.jsonl. --resume continues from last.pt with the same step count and batches.

examples:
  tumorsynth train-diffusion --data Task03_Liver/ --labels msd --organs liver --out runs/diff1
  tumorsynth train-diffusion --data kits/ --labels kits --organs kidney --config latent \\
      --device cuda --out runs/kits-latent
  tumorsynth train-diffusion --data datalist.json --max-minutes 60 --events jsonl --out runs/d
  tumorsynth train-diffusion --data datalist.json --out runs/d --resume
  tumorsynth models add runs/diff1/best.pt --id liver-diffusion
  tumorsynth synth ... --tumor "organ=liver,method=diffusion,diffusion_model=liver-diffusion\""""


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from exc


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "train-diffusion", help="train the diffusion model of the 'diffusion' appearance",
        description="Train a mask-conditioned diffusion model (MONAI) that paints the inside of a "
                    "tumor from the scan around it, on image/label pairs with tumor labels.",
        epilog=EPILOG, run=run,
    )
    p = parser.add_argument
    p("--data", required=True, help="folder of image/label pairs or a datalist JSON (with tumor labels)")
    p("--out", required=True, help="run folder (checkpoints, config, events)")
    p("--config", choices=("pixel", "latent"), default="pixel", help="pixel (CPU default) or latent")
    p("--organs", type=_names, default=None, help="organs whose tumors to learn (default: liver,pancreas,kidney)")
    p("--labels", default="auto", help="label convention: auto, totalseg, msd, lits, kits, binary")
    p("--max-steps", type=int, default=2000, help="denoiser optimizer steps (default 2000)")
    p("--ae-steps", type=int, default=2000, help="latent: autoencoder steps before the denoiser (default 2000)")
    p("--max-minutes", type=float, default=None, help="stop (and save) after this many minutes")
    p("--resume", action="store_true", help="continue the run in --out from last.pt")
    p("--batch-size", type=int, default=8, help="patches per step (default 8)")
    p("--lr", type=float, default=2e-4, help="AdamW learning rate of the denoiser (default 2e-4)")
    p("--lr-schedule", choices=LR_SCHEDULES, default="cosine",
      help="cosine: warm-up, then down to 1 %% at the last step (with --max-minutes the last step is "
           "fitted to the budget as the speed is measured, never beyond --max-steps); constant (default cosine)")
    p("--warmup-steps", type=int, default=50, help="cosine: steps of linear warm-up (default 50)")
    p("--ae-lr", type=float, default=1e-4, help="latent: AdamW learning rate of the autoencoder")
    p("--ema-decay", type=float, default=0.995, help="EMA decay of the saved weights (default 0.995)")
    p("--patch", type=int, default=None, help="patch side in cells (default 32 pixel, 96 latent)")
    p("--channels", type=_ints, default=None, help="denoiser widths (default 16,32,64 pixel; 32,64,64 latent)")
    p("--ae-channels", type=_ints, default=None, help="latent: autoencoder widths (default 32,64,64: 4x smaller)")
    p("--latent-channels", type=int, default=None, help="latent: channels of the latent (default 4)")
    p("--timesteps", type=int, default=None, help="T of the noise schedule (default 4 pixel, 200 latent)")
    p("--prediction", choices=("v_prediction", "epsilon"), default=None,
      help="what the denoiser predicts (default: v_prediction pixel, epsilon latent)")
    p("--sampler", choices=("ddpm", "ddim"), default=None, help="default sampler stored with the model")
    p("--sample-steps", type=int, default=None, help="default DDIM steps stored with the model")
    p("--val-every", type=int, default=250, help="sample the held-out patches every N steps (0: at the end)")
    p("--val-patches", type=int, default=16, help="held-out patches (default 16)")
    p("--val-fraction", type=float, default=0.2, help="share of cases held out without a validation list")
    p("--ckpt-every", type=int, default=50, help="write last.pt every N steps (default 50)")
    p("--precision", choices=("auto", "fp32"), default="auto",
      help="auto: fp16 autocast on CUDA, bf16 on CPUs with native bf16 (AMX), else fp32 (default auto)")
    p("--trained-on", default="", help="what the data are, stored in the model (shown in reports)")
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    organs = tuple(canonical_organ(o) for o in (args.organs or ORGANS))
    return DiffusionTrainConfig(
        data=str(args.data), out=str(args.out), config=args.config, organs=organs, labels=args.labels,
        patch=args.patch, channels=args.channels, ae_channels=args.ae_channels,
        latent_channels=args.latent_channels, timesteps=args.timesteps, prediction=args.prediction,
        sampler=args.sampler, sample_steps=args.sample_steps, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps, ema_decay=args.ema_decay,
        max_steps=args.max_steps, ae_steps=args.ae_steps, ae_lr=args.ae_lr, max_minutes=args.max_minutes,
        val_every=args.val_every, val_patches=args.val_patches, ckpt_every=args.ckpt_every,
        val_fraction=args.val_fraction, seed=args.seed, device=args.device, precision=args.precision,
        resume=args.resume,
        trained_on=args.trained_on)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    with event_session(args.events, desc="train-diffusion", log_path=out / "events.jsonl") as events:
        try:
            cfg = config_from_args(args)
            from ..generative.trainer import train_diffusion

            result = train_diffusion(cfg, events)
        except Exception as exc:  # the CLI prints the error (and its event); keep it in the log
            events.error(str(exc), error=type(exc).__name__, log_only=True)
            raise
        summary = result.metrics
        if summary.get("n_patches"):
            events.log(f"held-out patches, one chain per sample: in-mask MAE {summary['mae']:.3f} vs surround fill "
                       f"{summary['mae_surround_fill']:.3f} (ratio {summary['mae_ratio']:.2f}, bar < 0.6); "
                       f"in-mask mean error {summary['mean_error']:.3f} (bar < 0.15)")
        if result.stopped == "signal":
            events.log(f"stopped at step {result.step}; last.pt saved; continue with --resume")
            return EXIT_INTERRUPTED
    return EXIT_OK
