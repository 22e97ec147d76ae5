"""threads=auto|load|N: parsing, the machine's cores, the cores other processes take, and the in-run adaptation."""

import subprocess
import sys
import time

import pytest
import torch

from fpnas.errors import ConfigError
from fpnas.runtime import threads


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("value, parsed", [("auto", "auto"), ("AUTO", "auto"), ("load", "load"), (1, 1), ("3", 3)])
def test_threads_parse(value, parsed):
    assert threads.parse_threads(value) == parsed


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True, None])
def test_bad_threads_are_one_line_errors(value):
    with pytest.raises(ConfigError, match="threads must be 'auto', 'load' or a positive integer"):
        threads.parse_threads(value)


@pytest.mark.parametrize(
    "others, cores, n",
    [
        (None, 2, 2),
        (0.0, 2, 2),
        (0.4, 2, 2),
        (0.6, 2, 1),
        (1.0, 2, 1),
        (1.9, 2, 1),
        (0.0, 8, 8),
        (2.2, 8, 6),
        (7.5, 8, 1),
    ],
)
def test_threads_are_the_cores_nobody_else_uses(others, cores, n):
    assert threads.threads_for(others, cores) == n


def test_a_spinning_process_is_counted_and_our_own_work_is_not():
    probe = threads.BusyCores()
    time.sleep(0.5)
    baseline = probe.since_last()  # what the rest of the machine does now
    if baseline is None:
        pytest.skip("no /proc/stat here")
    if baseline > (threads.os.cpu_count() or 1) - 1.3:
        pytest.skip(f"the machine is busy ({baseline:.1f} cores in use by others): nothing free to measure")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        probe.since_last()
        time.sleep(1.0)
        with_spinner = probe.since_last()
    finally:
        spinner.kill()
        spinner.wait()
    probe.since_last()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # this process keeps a core busy: not "another process"
        sum(range(1000))
    own_work = probe.since_last()
    assert with_spinner >= baseline + 0.6, (baseline, with_spinner)
    assert own_work <= baseline + 0.4, (baseline, own_work)


def test_fixed_threads_are_set_and_reported():
    assert threads.apply_thread_policy(1) == "threads=1" and torch.get_num_threads() == 1
    text = threads.apply_thread_policy("load", probe_seconds=0.05)
    assert text.startswith("threads=load: ") and f"{torch.get_num_threads()} of {threads.usable_cores()}" in text


def test_auto_is_the_machines_cores_whatever_the_load(monkeypatch):
    """threads=auto: the usable cores, not the free ones, so a seed gives the same search on a busy machine."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads.BusyCores, "since_last", lambda self: 1.0)  # another process holds a core
    text = threads.apply_thread_policy("auto", probe_seconds=0.0)
    assert text.startswith("threads=auto: 2 ") and torch.get_num_threads() == 2
    assert threads.apply_thread_policy("load", probe_seconds=0.0).startswith("threads=load: 1 of 2")
    policy = threads.ThreadPolicy("auto", every_seconds=0.0)  # auto is never adapted during the run
    torch.set_num_threads(2)
    policy.on_train_start(None, None)
    policy.on_train_batch_end(None, None, None, None, 0)
    assert torch.get_num_threads() == 2


def test_the_callback_follows_the_free_cores(monkeypatch):
    busy = {"others": 1.0}
    monkeypatch.setattr(threads.BusyCores, "since_last", lambda self: busy["others"])
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    torch.set_num_threads(2)
    policy = threads.ThreadPolicy("load", every_seconds=0.0)
    policy.on_train_start(None, None)
    policy.on_train_batch_end(None, None, None, None, 0)
    assert torch.get_num_threads() == 1  # another process took a core
    busy["others"] = 0.1
    policy.on_train_batch_end(None, None, None, None, 1)
    assert torch.get_num_threads() == 2  # it is free again
    fixed = threads.ThreadPolicy(2, every_seconds=0.0)  # a fixed count is never touched
    fixed.on_train_start(None, None)
    busy["others"] = 1.0
    fixed.on_train_batch_end(None, None, None, None, 2)
    assert torch.get_num_threads() == 2


def test_omp_num_threads_caps_auto(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.usable_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert threads.usable_cores() == len(threads.os.sched_getaffinity(0))


def test_auto_shares_the_cores_among_the_processes_of_one_machine(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    assert threads.apply_thread_policy("auto", processes=2).startswith("threads=auto: 2 (the 4 usable cores shared")
    assert torch.get_num_threads() == 2
    assert threads.apply_thread_policy("auto", processes=8).startswith("threads=auto: 1 ")
    assert [threads.processes_per_node(c) for c in ({"devices": 2}, {"devices": "3"}, {"devices": [0, 1]}, {})] == [
        2,
        3,
        2,
        1,
    ]
    assert threads.processes_per_node({"devices": "auto"}) == 1
