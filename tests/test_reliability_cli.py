"""Reliability, the command line as a new user meets it: options that cannot work fail before the
header and before training, naming the flag (and the extra to install); Ctrl-C keeps what was asked
for; the automatic device choice is printed; hints use CLI syntax."""

from __future__ import annotations

import sys

import pytest

import bpgpu
from bpgpu.cli.main import cli_syntax, main
from bpgpu.errors import TrainingInterrupted


def _run(capsys, *argv):
    code = main(["train", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fit_must_not_run(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started although an option was bad")

    monkeypatch.setattr(bpgpu.MLP, "fit", fail)


@pytest.mark.parametrize("argv, words", [
    (["--sizes", "64,10,3"], ["--sizes ends with 3 outputs", "10", "--sizes 64,10,10"]),
    (["--sizes", "10,5,10"], ["--sizes starts with 10", "64 features"]),
    (["--epochs", "0"], ["--epochs", "≥ 1", "got 0"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--lr-step", "-1"], ["--lr-step"]),
    (["--plot", "out.txt"], ["--plot", "'txt'", ".png"]),
    (["--plot", "{tmp}/no/such/h.png"], ["--plot", "does not exist"]),
    (["--save", "{tmp}/no/such/m.npz"], ["--save", "does not exist"]),
    (["--save", "/dev/null"], ["--save", "character device", "regular file"]),
    (["--checkpoint", "{tmp}/ck-{foo}.npz"], ["--checkpoint ", "{foo}", "{epoch}"]),
    (["--checkpoint", "{tmp}/no/ck.npz"], ["does not exist"]),
])
def test_bad_options_fail_before_the_header_and_before_training(capsys, monkeypatch, tmp_path, argv, words):
    _fit_must_not_run(monkeypatch)
    code, out, err = _run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv], "--no-progress")
    assert code == 1 and out == "", out  # nothing printed before the error: not even the header
    for word in words:
        assert word in err, err
    assert "Traceback" not in err


def test_plot_without_matplotlib_names_the_extra_before_training(capsys, monkeypatch, tmp_path):
    _fit_must_not_run(monkeypatch)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = _run(capsys, "--plot", str(tmp_path / "h.png"), "--no-progress")
    assert code == 1 and out == ""
    assert "--plot needs matplotlib" in err and 'pip install ".[plot]"' in err and "install pip install" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"bpgpu {bpgpu.__version__}"


def test_the_automatic_device_choice_is_printed_with_its_reason(capsys, monkeypatch):
    monkeypatch.setenv("BPGPU_DEVICE", "auto")
    monkeypatch.setattr("bpgpu.backend.device.cuda_status", lambda index=0: "no driver (test stand-in); use device='cpu'")
    code, out, _ = _run(capsys, "--epochs", "1", "--no-progress")
    assert code == 0
    line = next(l for l in out.splitlines() if l.startswith("device:"))
    assert "cpu" in line and "BPGPU_DEVICE=auto" in line and "no usable GPU" in line and "--device cpu" in line


def test_adam_does_not_keep_sgds_step_decay(capsys):
    code, out, _ = _run(capsys, "--optimizer", "adam", "--epochs", "1", "--no-progress")
    assert code == 0 and "Adam(lr=constant(0.001)" in out
    code, out, _ = _run(capsys, "--optimizer", "adam", "--lr-step", "5", "--epochs", "1", "--no-progress")
    assert code == 0 and "step(0.001, every=5" in out
    code, out, _ = _run(capsys, "--epochs", "1", "--no-progress")
    assert "SGD(lr=step(0.05, every=20, gamma=0.2)" in out


def test_library_hints_become_cli_syntax():
    text = "CuPy is missing; or use device='cpu'. got batch_size=0 and dtype=\"float16\""
    assert cli_syntax(text) == "CuPy is missing; or use --device cpu. got --batch-size 0 and --dtype float16"
    assert cli_syntax("x lives on cpu") == "x lives on cpu"


@pytest.mark.parametrize("interrupt, saved, word", [
    (TrainingInterrupted("stopped", signal="SIGINT", epoch=3, batch=7), True, "at a step boundary after epoch 3, batch 7"),
    (TrainingInterrupted("stopped", signal="SIGTERM", epoch=1, batch=2), True, "(SIGTERM)"),
    (KeyboardInterrupt(), False, "nothing was saved"),
])
def test_an_interrupted_train_exits_128_plus_the_signal_and_keeps_save(capsys, monkeypatch, tmp_path, interrupt, saved, word):
    def interrupted_fit(self, *args, **kwargs):
        raise interrupt

    monkeypatch.setattr(bpgpu.MLP, "fit", interrupted_fit)
    model = tmp_path / "m.npz"
    code, _, err = _run(capsys, "--save", str(model), "--no-progress")
    assert code == (143 if getattr(interrupt, "signal", "SIGINT") == "SIGTERM" else 130)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and word in lines[0], err
    assert model.exists() == saved


def test_the_readme_links_the_projects_own_math_and_it_holds_what_the_code_cites():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]*MATH\.md)\)", readme)
    assert links and all((root / link).resolve() == (root / "MATH.md") for link in links), links
    math = (root / "MATH.md").read_text(encoding="utf-8")
    for cited in ("BP1", "BP2", "BP3", "BP4", "## Costs", "## Activations", "λ/n", "m_r / m", "−1.0000000000842668"):
        assert cited in math, cited
    for path in (root / "bpgpu").rglob("*.py"):  # every "MATH.md, "Section"" the code cites exists
        for section in re.findall(r'MATH\.md, "([^"]+)"', path.read_text(encoding="utf-8")):
            assert f"## {section}" in math, (path, section)


def test_the_progress_line_keeps_every_field_in_80_columns_and_one_samples_per_second(monkeypatch):
    """The bar's line (epoch, time left, cost, val_acc, samples/s) fits 80 columns; mid-epoch and
    end-of-epoch samples/s are the same measure (rows / time of the epoch's steps)."""
    from tqdm import tqdm

    from bpgpu.training import progress as progress_module
    from bpgpu.training.progress import BAR_FORMAT, Progress

    line = tqdm.format_meter(1234, 2200, 3.1, ncols=80, prefix="epoch 100/100", bar_format=BAR_FORMAT,
                             postfix="cost 0.1234 val_acc 0.9775 1,234,567 samples/s", unit="batch")
    assert len(line) <= 80 and "val_acc 0.9775" in line and "samples/s" in line, line
    clock = iter([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    shown = []
    bar = Progress(True, 1, 0, 2)
    monkeypatch.setattr(bar.bar, "set_postfix_str", lambda text, refresh=True: shown.append(text))
    bar.start_epoch(0)                                   # t = 0
    bar.batch(0, 100, 0.5)                               # t = 1: 100 rows in 1 s
    bar.batch(1, 300)                                    # t = 2: 300 rows in 2 s
    bar.end_epoch({"cost": 0.4, "val_accuracy": 0.9, "val_cost": 0.3, "seconds": 30.0}, 300)  # validation excluded
    bar.close()
    assert shown[0].endswith(" 100 samples/s") and shown[-1] == "cost 0.4000 val_acc 0.9000 150 samples/s", shown
    clock2 = iter([0.0, 2.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock2))
    resumed = Progress(True, 1, 0, 4)
    monkeypatch.setattr(resumed.bar, "set_postfix_str", lambda text, refresh=True: shown.append(text))
    resumed.start_epoch(0)
    resumed.batch(2, 300, 0.5)  # resumed after 2 of 4 batches of 100: 100 rows trained in 2 s here
    resumed.close()
    assert shown[-1].endswith(" 50 samples/s"), shown


def test_ctrl_c_outside_training_is_one_line_and_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("bpgpu.cli.train_options.load_data", interrupted)
    code, _, err = _run(capsys, "--no-progress")
    assert code == 130 and err.strip() == "bpgpu train: interrupted (SIGINT); nothing was saved."


def test_a_cli_resume_with_other_options_is_refused_in_cli_terms_unless_allowed(capsys, tmp_path):
    ck = tmp_path / "ck.npz"
    assert _run(capsys, "--epochs", "2", "--checkpoint", str(ck), "--no-progress")[0] == 0
    code, out, err = _run(capsys, "--epochs", "3", "--resume", str(ck), "--momentum", "0.5", "--no-progress")
    assert code == 1 and "momentum: saved 0.9, given 0.5" in err and "--resume-allow optimizer" in err, err
    assert "bpgpu.Resume" not in err and "optimizer=None" not in err
    code, out, err = _run(capsys, "--epochs", "3", "--resume", str(ck), "--momentum", "0.5",
                          "--resume-allow", "optimizer", "--no-progress")
    assert code == 0, err
    assert _run(capsys, "--epochs", "3", "--resume", str(ck), "--no-progress")[0] == 0  # same options: fine
    code, _, err = _run(capsys, "--resume-allow", "everything", "--resume", str(ck), "--no-progress")
    assert code == 1 and "--resume-allow takes data and/or optimizer" in err
