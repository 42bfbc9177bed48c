"""Run ``experiment=`` recipes back to back and print their docs/results.md rows.

    python scripts/gpu_rows.py --data-root devdata/ped2-mp4 --out runs desdnet_ped2 convstae_ped2
    python scripts/gpu_rows.py ... --budget-min 9      # stop before a 10-minute command limit
    python scripts/gpu_rows.py ... --chunk-epochs 10   # long recipes: 10 epochs per chunk
    python scripts/gpu_rows.py ... --set trainer.devices=2  # an override for every recipe

Made for a short GPU slice (see the README's device notes): each recipe runs in
``<out>/<name>/`` and ``vad.train`` writes ``run.json`` and ``metrics.json`` there. A recipe longer
than one command runs in chunks of ``--chunk-epochs`` epochs, each resuming from the previous
chunk's ``checkpoints/last.ckpt`` (only the last chunk tests); before starting a chunk the script
checks that, at the pace of the chunk before it, the chunk ends inside ``--budget-min``. If not, it
stops and says so: run the same command again (in the next command slot) and it goes on where it
stopped. Finished recipes are skipped. At the end it prints the rows of every finished recipe
(`vad.results`), ready for docs/results.md, or appends them with ``--append``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vad.results import markdown_table, read_run  # noqa: E402


def recipe_epochs(name: str, extra: list[str]) -> int:
    """``trainer.max_epochs`` of ``experiment=name`` with ``extra`` overrides."""
    from hydra import compose, initialize_config_dir

    from vad.train import CONFIG_DIR

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={name}", *extra])
    return int(cfg.trainer.max_epochs)


def epochs_done(run_dir: Path) -> int:
    """Epochs finished in ``run_dir`` according to its ``last.ckpt`` (0 without one)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return 0
    from vad.checkpoint import load_checkpoint_file

    return int(load_checkpoint_file(last)["epoch"]) + 1  # weights only: no code runs


def run_recipe(name: str, args: argparse.Namespace, deadline: float) -> str:
    """Run (or go on with) one recipe; returns ``done``, ``stopped`` or ``failed``."""
    run_dir = args.out / name
    if (run_dir / "metrics.json").exists():
        print(f"[{name}] already finished: {run_dir}")
        return "done"
    total = recipe_epochs(name, args.overrides)
    chunk = args.chunk_epochs or total
    last_chunk_s = None
    while True:
        done = epochs_done(run_dir)
        target = min(done + chunk, total)
        if last_chunk_s is not None and time.time() + last_chunk_s > deadline:
            print(f"[{name}] {done}/{total} epochs; the next chunk would pass the budget: "
                  f"run the same command again to go on")
            return "stopped"
        command = [sys.executable, "-m", "vad.train", f"experiment={name}",
                   f"hydra.run.dir={run_dir}", *args.overrides]
        if args.data_root is not None:
            command.insert(4, f"data.root={args.data_root}")
        if target < total:  # an intermediate chunk: stop early, test only after the last
            command += [f"trainer.max_epochs={target}", "test=false"]
        if done > 0:
            command.append(f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}")
        print(f"[{name}] epochs {done} -> {target} of {total}: {' '.join(command[1:])}",
              flush=True)
        started = time.time()
        if subprocess.run(command).returncode != 0:
            print(f"[{name}] failed: see {run_dir}/error.txt")
            return "failed"
        last_chunk_s = (time.time() - started) * chunk / max(target - done, 1)
        if target >= total:
            return "done"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="experiment names (conf/experiment/<name>.yaml)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="the dataset folder (data.root; none for generated data)")
    parser.add_argument("--out", required=True, type=Path, help="one folder per recipe below it")
    parser.add_argument("--budget-min", type=float, default=None,
                        help="start no chunk that would end later than this (minutes)")
    parser.add_argument("--chunk-epochs", type=int, default=None,
                        help="epochs per command (default: the whole recipe in one)")
    parser.add_argument("--append", type=Path, default=None,
                        help="append the finished recipes' rows to this markdown file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="an extra override for every recipe (repeatable)")
    args = parser.parse_args(argv)
    deadline = time.time() + 60 * args.budget_min if args.budget_min else float("inf")
    outcome = {name: run_recipe(name, args, deadline) for name in args.names}
    finished = [args.out / n for n, o in outcome.items() if o == "done"]
    if finished:
        table = markdown_table([read_run(run) for run in finished])
        print(table)
        if args.append:
            with open(args.append, "a") as handle:
                handle.write("\n" + table + "\n")
    return 0 if all(o == "done" for o in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
