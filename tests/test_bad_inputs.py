"""The bad-input catalogue: every user mistake ends with one clear line, a non-zero exit and the
earlier checkpoints untouched.

Most cases call the real Hydra entry points (``search.main`` / ``train.main``) in this process with a
patched ``sys.argv`` (a subprocess costs ~6 s of imports each); a few run as real subprocesses to
prove that the command line prints no traceback, and that ``HYDRA_FULL_ERROR=1`` still shows one.

Mistakes that Hydra itself catches while composing the config (an unknown group option such as
``space=nope``, overriding a key that does not exist such as ``cost.nope=1``) keep Hydra's report:
exit status 1, a message naming the option or key (and listing the available options), and the
line "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace", but no Python
traceback. Everything that reaches fpnas ends in one ``error: ...`` line and exit status 2.
"""

import contextlib
import hashlib
import importlib.util
import io
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from tests.helpers import MICRO
from tests.helpers import QUICK_SEARCH as QUICK

ROOT = Path(__file__).resolve().parents[1]


def _entry_point(name: str):
    """``search.py`` / ``train.py`` as a module whose Hydra main finds ``conf/`` as it does when run."""
    spec = importlib.util.spec_from_file_location(f"fpnas_entry_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Hydra looks for conf/ next to the calling file only when the task function lives in __main__
    module.main.__wrapped__.__module__ = "__main__"
    return module


ENTRY = {}


def run_in_process(script: str, args: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``python <script>.py <args>``, run in this process."""
    if script not in ENTRY:
        ENTRY[script] = _entry_point(script)
    GlobalHydra.instance().clear()
    argv, full_error = sys.argv, os.environ.pop("HYDRA_FULL_ERROR", None)
    sys.argv, err = [f"{script}.py", *args], io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ENTRY[script].main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
        if full_error is not None:
            os.environ["HYDRA_FULL_ERROR"] = full_error
        GlobalHydra.instance().clear()
    return code, err.getvalue()


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad (and one good) input files, and a real checkpoint of a micro-space search."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "empty").mkdir()
    (d / "no_val" / "train" / "a").mkdir(parents=True)
    (d / "a_file").write_text("not a directory\n")
    (d / "random.ckpt").write_bytes(random.Random(0).randbytes(4096))
    (d / "bad_yaml.yaml").write_text("space: tiny\nchoices: [1, 2\n")
    (d / "bad_decision.yaml").write_text("space: tiny\nchoices: {g9.channels: 3}\n")
    (d / "bad_space.yaml").write_text("space: nope\nchoices: {}\n")
    (d / "bad_inline.yaml").write_text(
        "space: {name: x, input_size: 28, stem: {channels: 8}, groups: [], head: {channels: 16}}\nchoices: {}\n"
    )
    (d / "random_bytes.yaml").write_bytes(bytes(range(128, 256)) * 8)  # not UTF-8
    from PIL import Image

    for sub in ("train", "val"):  # a single class: nothing to classify
        (d / "one_class" / sub / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(d / "one_class" / sub / "a" / "0.png")
    run = d / "micro_run"
    code, err = run_in_process(
        "search", [f"hydra.run.dir={run}", *MICRO, *QUICK, "trainer.max_epochs=1", "distribution.schedule=factorized"]
    )
    assert code == 0, err
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "arch.yaml").is_file()
    return d


# (script, overrides, exit status, substrings of the message); {d} = the directory of the input files.
# Each case runs in a directory that already holds an earlier run's checkpoints/last.ckpt.
CATALOGUE = [
    # names: Hydra's own report (exit 1), then fpnas's checks of keys Hydra lets through
    ("search", ["space=nope"], 1, ["Could not find 'space/nope'", "Available options in 'space'", "tiny"]),
    ("search", ["cost.nope=1"], 1, ["Could not override 'cost.nope'", "Key 'nope' is not in struct"]),
    ("search", ["+cost.target_mflop=0.4"], 2, ["cost.target_mflop is not a key of cost", "'target_mflops'"]),
    ("search", ["+data.foo=1"], 2, ["data.foo is not an option of fpnas.data.Mnist5kDataModule", "'batch_size'"]),
    ("search", ["data=imagefolder"], 2, ["data.root is required", "data.root=<value>"]),
    # types and ranges
    (
        "search",
        ["cost.target_mflops=abc"],
        2,
        ["cost.target_mflops='abc'", "a number > 0", "e.g. cost.target_mflops=0.6"],
    ),
    ("search", ["cost.beta=-1"], 2, ["cost.beta=-1", "a number >= 0", "e.g. cost.beta=0.75"]),
    ("search", ["trainer.max_epochs=-1"], 2, ["trainer.max_epochs=-1", "an integer >= 1"]),
    (
        "search",
        ["threads=0"],
        2,
        ["threads must be 'auto', 'load' or a positive integer", "got 0", "e.g. threads=auto"],
    ),
    ("train", ["threads=many"], 2, ["threads must be 'auto', 'load' or a positive integer", "got 'many'"]),
    ("search", ["data.batch_size=0"], 2, ["batch_size must be an integer >= 1, got 0", "set data.batch_size"]),
    ("search", ["sampler.lam=abc"], 2, ["sampler.lam must be > 0 (paper: 0.25), got abc"]),
    ("search", ["search.weight_importance=maybe"], 2, ["search.weight_importance='maybe'", "true or false"]),
    (
        "search",
        ["optim.alpha.betas=[0.9]"],
        2,
        ["optim.alpha.betas=[0.9]", "two numbers in [0, 1)", "e.g. optim.alpha.betas=[0.9,0.999]"],
    ),
    ("search", ["optim.omega.lr=0"], 2, ["optim.omega.lr=0 is invalid", "a number > 0", "e.g. optim.omega.lr=0.1"]),
    (
        "search",
        ["+optim.omega.foo=1"],
        2,
        [
            "optim.omega: torch.optim.sgd.SGD rejects its arguments",
            "unexpected keyword argument 'foo'",
            "fix or remove the optim.omega.* keys",
        ],
    ),
    (
        "search",
        ["data.test_fraction=1.5"],
        2,
        ["test_fraction must be a number strictly between 0 and 1, got 1.5", "set data.test_fraction"],
    ),
    (
        "search",
        ["callbacks.search_stats.prob_every_n_steps=-1"],
        2,
        ["callbacks.search_stats.prob_every_n_steps=-1 is invalid", "an integer >= 0"],
    ),
    ("search", ["trainer.devices=abc"], 2, ["pytorch_lightning.Trainer rejects the trainer.* settings", "devices"]),
    # infeasible target, malformed space
    (
        "search",
        ["cost.target_mflops=0.1"],
        2,
        ["cost.target_mflops=0.1 is below what space 'tiny' can reach", "min 0.2", "pick a target in that range"],
    ),
    ("search", ["space.groups=[]"], 2, ["space 'tiny'", "'groups' must be a non-empty list"]),
    # data directories
    (
        "search",
        ["data=imagefolder", "data.root=/nonexistent/imagenet"],
        2,
        ["data.root='/nonexistent/imagenet' is not a directory", "train/<class>/*"],
    ),
    ("search", ["data=imagefolder", "data.root={d}/empty"], 2, ["empty/train is missing", "ImageNet layout"]),
    ("search", ["data=imagefolder", "data.root={d}/no_val"], 2, ["no_val/val is missing"]),
    ("search", ["data=cifar10", "data.root={d}/empty"], 2, ["cifar10 not found", "data.download=true"]),
    # checkpoints
    (
        "search",
        ["ckpt_path={d}/random.ckpt"],
        2,
        ["ckpt_path={d}/random.ckpt is not a readable PyTorch checkpoint", "give another checkpoint"],
    ),
    (
        "search",
        ["ckpt_path={d}/micro_run/checkpoints/last.ckpt"],
        2,
        ["is a search.py checkpoint of another space or architecture", "shape", "resume with the settings"],
    ),
    ("search", ["ckpt_path={d}/nope.ckpt"], 2, ["ckpt_path={d}/nope.ckpt: no such file", "ckpt_path=last"]),
    (  # the same tensor shapes, another space: the stem and head nonlinearity changed
        "search",
        [*MICRO, "space.act=swish", "ckpt_path={d}/micro_run/checkpoints/last.ckpt"],
        2,
        ["was written in another version of space 'micro'", "act: 'relu' -> 'swish'", "start a new run"],
    ),
    # output directory under a regular file: unwritable for root too
    (
        "search",
        ["hydra.run.dir={d}/a_file/run"],
        2,
        ["hydra.run.dir={d}/a_file/run cannot be created", "a_file is a file, not a directory"],
    ),
    # train.py
    ("train", [], 2, ["no architecture given", "arch=<path to arch.yaml"]),
    ("train", ["arch={d}/missing.yaml"], 2, ["architecture file {d}/missing.yaml does not exist", "arch.yaml"]),
    ("train", ["arch=nope"], 2, ["arch='nope' is neither an existing architecture file", "mobilenetv2_100"]),
    ("train", ["arch={d}/random_bytes.yaml"], 2, ["random_bytes.yaml is not a text file (not UTF-8)"]),
    (
        "search",
        ["data=imagefolder", "data.root={d}/one_class"],
        2,
        ["one_class/train has 1 class used (['a'])", "needs at least 2 class directories"],
    ),
    (
        "train",
        ["arch={d}/bad_yaml.yaml"],
        2,
        ["bad_yaml.yaml is not valid YAML (line 3, column 1", "expected ',' or ']'"],
    ),
    ("train", ["arch={d}/bad_decision.yaml"], 2, ["unknown decision(s) ['g9.channels']"]),
    ("train", ["arch={d}/bad_space.yaml"], 2, ["bad_space.yaml: space: unknown search space 'nope'; available"]),
    ("train", ["arch={d}/bad_inline.yaml"], 2, ["bad_inline.yaml: inline space", "'groups' must be a non-empty"]),
    ("train", ["arch=mobilenetv2_100", "recipe.lr=abc"], 2, ["recipe.lr='abc'", "e.g. recipe.lr=0.05"]),
    ("train", ["arch=mobilenetv2_100", "recipe.opt=foo"], 2, ["recipe.opt='foo': use one of", "'sgd'"]),
    (
        "train",
        ["arch={d}/micro_run/arch.yaml", "data=digits", "ckpt_path={d}/micro_run/checkpoints/last.ckpt"],
        2,
        ["is a search.py checkpoint: train.py resumes only its own", "init.from_search={d}/micro_run/checkpoints"],
    ),
    (
        "train",
        ["arch={d}/micro_run/arch.yaml", "data=digits", "init.from_search={d}/random.ckpt"],
        2,
        ["init.from_search={d}/random.ckpt is not a readable PyTorch checkpoint"],
    ),
    ("train", ["arch=mobilenetv2_100", "data=imagefolder", "data.root={d}/empty"], 2, ["empty/train is missing"]),
    ("train", ["arch=mobilenetv2_100", "hydra.run.dir={d}/a_file/x"], 2, ["a_file is a file, not a directory"]),
]


@pytest.mark.parametrize(
    "script, overrides, status, expected", CATALOGUE, ids=[f"{c[0]}:{' '.join(c[1]) or '(none)'}" for c in CATALOGUE]
)
def test_bad_input_ends_with_one_clear_line(files, tmp_path, script, overrides, status, expected):
    run = tmp_path / "run"  # an earlier run's checkpoint lives here and must survive the failure
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(files / "micro_run" / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt")
    before = digest(run / "checkpoints" / "last.ckpt")
    args = [a.format(d=files) for a in overrides]
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.insert(0, f"hydra.run.dir={run}")
    # should a check not fire, the run stays short (the case's own overrides come last and win)
    safety = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "trainer.enable_progress_bar=false"]
    if script == "search":  # a one-epoch search: no warm-up, no switch it would never reach (and warn about)
        safety += ["search.warmup_epochs=0", "distribution.schedule=factorized"]
    code, err = run_in_process(script, [*safety, *args] if status == 2 else args)
    assert code == status, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    line = last_line(err)
    if status == 2:
        assert line.startswith("error: "), err[-3000:]
        text = line
    else:  # Hydra's own report: the message comes first, the HYDRA_FULL_ERROR hint last
        assert line == "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
        text = err
    for part in expected:
        assert part.format(d=files) in text, text
    assert digest(run / "checkpoints" / "last.ckpt") == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]


def test_catalogue_is_big_enough():
    assert len(CATALOGUE) >= 20
    assert {c[0] for c in CATALOGUE} == {"search", "train"}


# ---------------------------------------------------------------------------- NaN / inf
def test_divergence_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    """A search that produces a non-finite log-likelihood stops at once, naming the step and the last
    good checkpoint, which it leaves byte for byte as it was.

    Trigger: resuming with search.importance_temperature=1e-320, which a checkpoint of an fpnas that did not
    record its settings (simulated: its run_settings and checksums removed) cannot refuse: the
    log-likelihoods divided by T overflow to -inf, whose importance weights are NaN.
    """
    import torch

    run = tmp_path / "run"
    base = [f"hydra.run.dir={run}", *MICRO, *QUICK, "distribution.schedule=factorized"]
    code, err = run_in_process("search", [*base, "trainer.max_epochs=1"])
    assert code == 0, err[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    older = torch.load(last, map_location="cpu", weights_only=False)
    del older["run_settings"]
    torch.save(older, last)
    (run / "checkpoints" / "checksums.sha256").unlink()
    before = digest(last)
    code, err = run_in_process(
        "search", [*base, "trainer.max_epochs=2", "ckpt_path=last", "search.importance_temperature=1e-320"]
    )
    assert code == 2 and "Traceback" not in err, err[-3000:]
    line = last_line(err)
    assert line.startswith("error: the search diverged at step 3 (epoch 1): "), line  # 2 good steps in epoch 0
    assert "search.importance_temperature is -inf" in line, line
    assert f"the last good checkpoint is {last} (left as it was)" in line, line
    assert "try a lower optim.omega.lr (now 0.1)" in line, line
    assert digest(last) == before


def test_divergence_in_the_first_steps_says_there_is_no_checkpoint(tmp_path):
    """optim.omega.lr=1e30 blows the weights up in the first update; nothing is written."""
    run = tmp_path / "run"
    code, err = run_in_process(
        "search",
        [
            f"hydra.run.dir={run}",
            *MICRO,
            *QUICK,
            "trainer.max_epochs=1",
            "distribution.schedule=factorized",
            "optim.omega.lr=1e30",
        ],
    )
    assert code == 2 and "Traceback" not in err, err[-3000:]
    line = last_line(err)
    assert line.startswith("error: the search diverged at step 1 (epoch 0): "), line
    assert line.endswith(
        "is nan; no checkpoint was written yet; try a lower optim.omega.lr (now 1e+30) or "
        "optim.alpha.lr (now 0.03) in a new run (a resume keeps the checkpoint's learning "
        "rates)"
    ), line
    assert not (run / "checkpoints" / "last.ckpt").exists()


# ---------------------------------------------------------------------------- the real command line
def _cli(script: str, cwd: Path, *args: str, full_error: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run(
        [sys.executable, str(ROOT / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_command_line_prints_one_line_and_full_error_shows_the_traceback(tmp_path):
    args = (f"hydra.run.dir={tmp_path / 'run'}", "cost.target_mflops=abc")
    proc = _cli("search", tmp_path, *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: cost.target_mflops='abc' is invalid: it must be a number > 0; e.g. cost.target_mflops=0.6"
    ]
    proc = _cli("search", tmp_path, *args, full_error=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ConfigError: cost.target_mflops='abc'" in proc.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("cost.target_mflops=abc", "cost.target_mflops='abc' is invalid"),
        ("cost.beta=-1", "cost.beta=-1 is invalid"),
        ("export.candidates=0", "export.candidates=0 is invalid"),
        ("search.sandwich=maybe", "search.sandwich='maybe' is invalid"),
        ("distribution.schedule=x", "distribution.schedule must be one of"),
        ("+search.foo=1", "search.foo is not a key of search"),
        ("progress=foo", "progress must be one of"),
    ],
)
def test_plain_option_errors_come_before_torch_and_lightning_are_imported(tmp_path, override, message):
    """A bad plain option is refused by search.py's first checks, before the heavy imports (which take
    seconds): the process that prints the error never imported torch or Lightning."""
    probe = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('heavy:', 'torch' in sys.modules or 'pytorch_lightning' in sys.modules))\n"
        f"sys.argv = ['search.py', {override!r}, 'hydra.run.dir={tmp_path / 'run'}']\n"
        f"runpy.run_path({str(ROOT / 'search.py')!r}, run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "heavy: False" in proc.stdout
    assert not (tmp_path / "run").exists()


def test_command_line_train_and_unwritable_directory(tmp_path):
    proc = _cli("train", tmp_path, f"hydra.run.dir={tmp_path / 'run'}", "arch=nope")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last_line(proc.stderr).startswith("error: arch='nope' is neither an existing architecture file")
    (tmp_path / "a_file").write_text("x")
    proc = _cli("search", tmp_path, f"hydra.run.dir={tmp_path / 'a_file' / 'run'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: hydra.run.dir={tmp_path / 'a_file' / 'run'} cannot be created: {tmp_path / 'a_file'} is a file, "
        "not a directory; choose a writable directory, e.g. hydra.run.dir=outputs/my_run"
    ]


@pytest.mark.slow  # a longer end-to-end run: CI runs it (`pytest -m slow`); the default run stays short
def test_divergence_under_ddp_stops_every_process_at_the_same_step(tmp_path):
    """Two CPU processes: the check reads all-reduced log-likelihoods, so both stop at step 1 (no
    process waits forever in a collective) and the line is printed once."""
    proc = _cli(
        "search",
        tmp_path,
        f"hydra.run.dir={tmp_path / 'run'}",
        *MICRO,
        *QUICK,
        "trainer.max_epochs=1",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "data.batch_size=32",
        "optim.omega.lr=1e30",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: the search diverged at step 1 (epoch 0): "), errors
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- errors found while loading data
def test_data_errors_found_during_the_fit_are_one_line(tmp_path):
    """Checks that need the data loaded: a batch larger than a split, and an image file that cannot be
    decoded (files are opened lazily: the run stops when it meets the file, naming it)."""
    from PIL import Image

    code, err = run_in_process(
        "search", [f"hydra.run.dir={tmp_path / 'big'}", *MICRO, *QUICK, "data.batch_size=100000"]
    )
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert last_line(err).startswith("error: batch_size=100000 exceeds the smaller of the ω/α splits (719 images)")
    root = tmp_path / "images"
    for sub, n in (("train", 12), ("val", 2)):
        for c in ("a", "b"):
            (root / sub / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (10, 10), (20 * i, 100 if c == "a" else 0, 50)).save(root / sub / c / f"{i}.png")
    (root / "train" / "b" / "x.jpg").write_bytes(b"not a jpeg at all")
    code, err = run_in_process(
        "search",
        [
            f"hydra.run.dir={tmp_path / 'corrupt'}",
            "space=micro",
            "data=imagefolder",
            f"data.root={root}",
            "data.batch_size=4",
            "cost.target_mflops=0.08",
            "trainer.max_epochs=1",
            "search.warmup_epochs=0",
            "distribution.schedule=factorized",
            "data.num_workers=2",  # the error comes from a worker process; 2: no more than CI's cores
            "trainer.enable_progress_bar=false",
        ],
    )
    assert code == 2 and "Traceback" not in err, err[-3000:]
    line = last_line(err)
    assert line.startswith(
        f"error: image file {root / 'train' / 'b' / 'x.jpg'} cannot be read (UnidentifiedImageError"
    ), line
    # no checkpoint was written before the broken file was met: run again (there is nothing to resume)
    assert line.endswith("remove or replace it, then run the same command again (no checkpoint was written yet)")


def test_a_refused_run_leaves_no_run_directory(tmp_path):
    """A run stopped by its checks before it started removes the directory Hydra made for it (and the
    log file in it); an existing directory with other files stays as it was."""
    run = tmp_path / "new_run"
    code, err = run_in_process("search", [f"hydra.run.dir={run}", "cost.target_mflops=-1"])
    assert code == 2 and "cost.target_mflops=-1" in last_line(err)
    assert not run.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    code, _ = run_in_process("search", [f"hydra.run.dir={kept}", "cost.target_mflops=-1"])
    assert code == 2 and (kept / "notes.txt").read_text() == "mine\n"


SWEEP = [*MICRO[:2], *QUICK, "trainer.max_epochs=1", "distribution.schedule=factorized"]


def test_a_sweep_with_bad_values_names_each_and_starts_no_job(tmp_path):
    sweep = tmp_path / "sweep"
    code, err = run_in_process(
        "search", ["-m", *SWEEP, "cost.target_mflops=0.08,-1,abc,0.1", f"hydra.sweep.dir={sweep}"]
    )
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 3, err[-3000:]
    assert lines[0].startswith("error: sweep job 1 (cost.target_mflops=-1): cost.target_mflops=-1 is invalid")
    assert lines[1].startswith("error: sweep job 2 (cost.target_mflops=abc): cost.target_mflops='abc'")
    assert "2 of 4 sweep jobs would fail, so none was started" in lines[2] and "skip_invalid_jobs=true" in lines[2]
    assert not sweep.exists() and "Traceback" not in err


def test_skip_invalid_jobs_runs_the_good_jobs_and_summarises_them(tmp_path):
    sweep = tmp_path / "sweep"
    code, err = run_in_process(
        "search",
        ["-m", *SWEEP, "cost.target_mflops=0.08,-1,abc,0.1", "skip_invalid_jobs=true", f"hydra.sweep.dir={sweep}"],
    )
    assert code == 0, err[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "3"]  # no directory for a bad job
    rows = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("0.08,") and rows[2].startswith("0.1,")


def test_a_broken_data_file_says_resume_only_when_there_is_a_checkpoint(tmp_path):
    from fpnas.errors import DataFileError, data_file_advice, user_message

    last = tmp_path / "checkpoints" / "last.ckpt"
    assert data_file_advice("image file x cannot be read; remove or replace it", last, tmp_path).endswith(
        "then run the same command again (no checkpoint was written yet)"
    )
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert data_file_advice("m", last, tmp_path) == f"m, then resume with ckpt_path=last hydra.run.dir={tmp_path}"
    # from a DataLoader worker: the message is the worker's last exception line
    wrapped = DataFileError(
        "Caught DataFileError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nfpnas.errors.DataFileError: image file a.jpg cannot be read '
        "(UnidentifiedImageError: cannot identify image file 'a.jpg'); remove or replace it\n"
    )
    assert user_message(wrapped) == (
        "image file a.jpg cannot be read (UnidentifiedImageError: cannot identify image file 'a.jpg'); "
        "remove or replace it"
    )


@pytest.mark.parametrize(
    "command, args, rc, expected",
    [
        ("fpnas-search", ["cost.target_mflops=abc", "hydra.run.dir=run"], 2, "cost.target_mflops='abc' is invalid"),
        ("fpnas-train", ["arch=no_such_arch", "hydra.run.dir=run"], 2, "arch='no_such_arch' is neither"),
        ("fpnas-space", ["micro"], 0, "space 'micro': 4 blocks in 2 groups"),
    ],
)
def test_console_commands_run_the_same_programs(tmp_path, command, args, rc, expected):
    """The [project.scripts] commands are search.py, train.py and python -m fpnas.<tool> under another name."""
    script = Path(sys.executable).parent / command
    assert script.is_file(), f"{script} is missing: pip install -e . installs it"
    proc = subprocess.run([str(script), *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == rc and expected in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # a refused run leaves no directory
