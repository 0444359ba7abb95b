"""Progress of long commands: a bar on a terminal, one plain line per unit of work in a log
(no carriage returns), through `dmsec.progress` and the commands that use it."""

from __future__ import annotations

from click.testing import CliRunner

import dmsec.progress as progress_mod
from dmsec.cli import main
from dmsec.progress import LineProgress, progress


def test_log_lines_one_per_unit_with_the_postfix(capsys):
    bar = progress(total=3, desc="zoo small", unit="model")
    assert isinstance(bar, LineProgress)  # pytest's stderr is no terminal
    for name in ("base", "full-7a", "lora-9a"):
        bar.set_postfix_str(name)
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.rsplit(" ", 2)[0] for line in lines] == [
        "zoo small: 1/3 model (base)", "zoo small: 2/3 model (full-7a)", "zoo small: 3/3 model (lora-9a)",
    ]  # fmt: skip


def test_log_lines_every_tenth_of_a_loop_and_the_last(capsys):
    assert list(progress(range(25), desc="finetune", unit="step", every=10)) == list(range(25))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ")[1] for line in lines] == ["10/25", "20/25", "25/25"]


def test_bar_on_a_terminal_and_nothing_when_disabled(monkeypatch, capsys):
    monkeypatch.setattr(progress_mod, "on_terminal", lambda stream=None: True)
    from tqdm.auto import tqdm

    bar = progress(total=2, desc="x")
    assert isinstance(bar, tqdm)
    bar.close()
    del bar
    capsys.readouterr()
    silent = progress(range(3), desc="x", enabled=False)
    assert list(silent) == [0, 1, 2] and capsys.readouterr().err == ""


def _no_bars(text: str) -> None:
    assert "\r" not in text and "it/s" not in text, text[-500:]


def test_finetune_log_has_a_line_per_tenth_of_the_steps(tiny_unet, tmp_path, training_images):
    base, images = tiny_unet.save(tmp_path / "base"), training_images(1, 8)
    args = ["finetune", "--images", str(images), "--base", str(base), "--out", str(tmp_path / "ft"),
            "--steps", "20", "--batch-size", "4"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    _no_bars(result.output)
    steps = [line for line in result.stderr.splitlines() if line.startswith("finetune: ")]
    assert [line.split(" ")[1] for line in steps] == [f"{n}/20" for n in range(2, 21, 2)]
