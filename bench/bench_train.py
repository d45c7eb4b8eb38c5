"""Training-speed benchmark (not a test): musicdiff's DiT in burn against the same architecture
in PyTorch on CPU (bench/dit_torch.py), in one run, on the same machine and thread count.

Run through scripts/bench-train.sh, which builds the Rust side
(crates/train/examples/bench_train.rs). Both peers read the same training config, build the
same network and time on synthetic batches:
  train_step  forward + masked v-loss + backward + AdamW (global-norm clipping) + EMA update
  forward_b2  one inference forward at batch 2 (a classifier-free-guidance sampling step)

Parity: bench/dit_params.json holds musicdiff's parameter table (names, shapes, count) for the
shipped configs, written and checked by the Rust test
`the_benchmark_parameter_table_matches_the_model` (crates/train/tests/train.rs). Every run
compares the Rust binary's parameter count and the PyTorch model's table against it, so a model
change that the peer lacks is named tensor by tensor instead of timed wrongly.

--check: one step, no warm-up, no timings; the parity checks only. Without PyTorch installed
(CI does not install it) it checks the Rust side and says that the PyTorch side was skipped.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tomllib

PARAMS = pathlib.Path(__file__).with_name("dit_params.json")


def table_for(config_path):
    """The committed parameter table of a config (by file stem), or None if it has none."""
    tables = json.loads(PARAMS.read_text())["configs"]
    return tables.get(pathlib.Path(config_path).stem)


def table_problems(expected, actual):
    """Differences between two {name: shape} tables, at most a few of each kind."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    shapes = sorted(n for n in set(expected) & set(actual) if list(expected[n]) != list(actual[n]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing in PyTorch (first: {', '.join(missing[:3])})")
    if extra:
        problems.append(f"{len(extra)} unexpected in PyTorch (first: {', '.join(extra[:3])})")
    if shapes:
        n = shapes[0]
        problems.append(f"{len(shapes)} of other shape (first: {n} {actual[n]}, musicdiff {expected[n]})")
    return problems


def check_torch_tables(peer):
    """The PyTorch model of every config in the table against musicdiff's table."""
    configs = pathlib.Path(__file__).resolve().parent.parent / "configs" / "train"
    for name, table in json.loads(PARAMS.read_text())["configs"].items():
        model_cfg = tomllib.load(open(configs / f"{name}.toml", "rb"))["model"]
        problems = table_problems(table["tensors"], peer.parameter_table(peer.Dit(model_cfg)))
        if problems:
            sys.exit(f"bench/dit_torch.py does not build musicdiff's {name} model: "
                     + "; ".join(problems) + " (see bench/dit_params.json)")
    return len(json.loads(PARAMS.read_text())["configs"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rust_bin")
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--check", action="store_true",
                    help="one step, no timings: the parity checks only")
    a = ap.parse_args()
    if a.check:
        a.steps, a.warmup = 1, 0
    cfg = tomllib.load(open(a.config, "rb"))
    table = table_for(a.config)
    # Rust first: importing and running torch leaves worker threads that skew later timings.
    out = subprocess.run([a.rust_bin, a.config, "--steps", str(a.steps), "--warmup", str(a.warmup)],
                         check=True, capture_output=True, text=True).stdout
    rust = {r["what"]: r for r in map(json.loads, out.strip().splitlines())}
    rust_params = rust["train_step"]["params"]
    if table is not None and table["parameters"] != rust_params:
        sys.exit(f"musicdiff's model has {rust_params} parameters, bench/dit_params.json says "
                 f"{table['parameters']} for {a.config}: rerun the Rust test that writes it")
    try:
        import dit_torch as peer
    except ImportError as e:
        if not a.check:
            sys.exit(f"PyTorch is missing ({e}): pip install -r bench/requirements-train.txt")
        print(f"check: musicdiff ran a step of {a.config} ({rust_params} parameters, as "
              f"bench/dit_params.json says); PyTorch is not installed, so its side was not checked")
        return
    tables = check_torch_tables(peer)
    params, train, fwd = peer.bench_torch(cfg, a.steps, a.warmup)
    if params != rust_params:
        sys.exit(f"parameter counts differ: torch {params}, musicdiff {rust_params}")
    if a.check:
        print(f"check: musicdiff and PyTorch ran a step of {a.config} with {params} parameters; "
              f"the PyTorch model matches bench/dit_params.json for all {tables} configs")
        return
    med = statistics.median
    b, n = cfg["optim"]["batch_size"], cfg["model"]["frames"] // cfg["model"]["patch_frames"]
    print(f"config {a.config}: {params / 1e6:.2f} M parameters, batch {b}, {n} tokens; "
          f"torch {peer.torch.__version__} with {peer.torch.get_num_threads()} threads; "
          f"medians of {a.steps} after {a.warmup} warm-up")
    rows = [("train step (fwd+bwd+AdamW+EMA)", med(rust["train_step"]["seconds"]), med(train)),
            ("inference forward, batch 2", med(rust["forward_b2"]["seconds"]), med(fwd))]
    print(f"{'':34} {'musicdiff':>10} {'PyTorch':>10} {'ratio':>8}")
    for name, r, t in rows:
        print(f"{name:34} {r:9.3f}s {t:9.3f}s {r / t:7.2f}x")
    print(f"training throughput: musicdiff {b / rows[0][1]:.2f} samples/s, PyTorch {b / rows[0][2]:.2f} samples/s "
          f"(ratio > 1: musicdiff slower)")


if __name__ == "__main__":
    main()
