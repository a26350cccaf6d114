"""Post-train on several processes or GPUs with HF Accelerate — the run chapter 04 would do, then let it evaluate.

    accelerate launch -m vlic.training.dpo.launch                          # params.yaml, as `dvc repro dpo` would
    accelerate launch --num_processes 8 -m vlic.training.dpo.launch --profile params/paper.yaml
    python -m vlic.training.dpo.launch                                    # one process (same as the chapter)

The parameters are chapter 04's, read through dvc.yaml's ``dpo`` stage (:func:`vlic.notebooks.stage_parameters`),
so the run has the resume key the chapter computes. Every process trains on its own buffer (its own candidates,
seeds ``seed + 1000·rank``) and DDP averages the gradients; the final state of each rank goes to
``models/codec_dpo.resume/rank<k>/``. Then ``dvc repro dpo`` resumes rank 0's state at its last step — no more
training — and writes the checkpoint, the held-out comparison and ``results/dpo.json``.
"""

from __future__ import annotations

import argparse
import sys

from vlic.config import load_params, merge
from vlic.notebooks import stage_parameters
from vlic.training.dpo.setup import setup_dpo
from vlic.training.dpo.trainer import train_dpo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlic.training.dpo.launch", description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    ap.add_argument("--profile", default=None, help="override file applied on top, e.g. params/paper.yaml")
    ap.add_argument("--dvc-yaml", default="dvc.yaml", help="pipeline whose 'dpo' stage maps params to the chapter")
    args = ap.parse_args(argv)
    from accelerate import Accelerator

    params = load_params(args.params)
    if args.profile:
        params = merge(params, load_params(args.profile))
    values = stage_parameters("dpo", params, args.dvc_yaml)
    setup = setup_dpo(**values)
    accelerator = Accelerator()
    result = train_dpo(setup.base, list(setup.train_images.values()), setup.reward, setup.cfg,
                       resume_dir=setup.resume_dir, reward_name=setup.reward.name, accelerator=accelerator,
                       progress=accelerator.is_main_process)
    if accelerator.is_main_process:
        print(f"post-trained {setup.cfg.steps} steps on {accelerator.num_processes} process(es) "
              f"({accelerator.distributed_type}) in {result.seconds:.0f} s; judge: {result.stats}\n"
              f"state saved in {setup.resume_dir}/: now `dvc repro dpo` evaluates it (it resumes at the last step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
