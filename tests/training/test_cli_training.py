"""CLI pieces of training: `train` refuses zero DMT epochs; `checkpoint` on bad input."""
from __future__ import annotations

import io

import pytest

from dmt_compile.tools.cli import main


@pytest.mark.parametrize("epochs,pretrain", [(2, 2), (1, 2)])
def test_train_refuses_epochs_that_leave_no_dmt_step(epochs, pretrain, capsys):
    code = main(["train", "--epochs", str(epochs), "--pretrain-epochs", str(pretrain)], stdout=io.StringIO())
    assert code == 2
    err = capsys.readouterr().err
    assert f"--epochs {epochs} leaves no DMT epoch after --pretrain-epochs {pretrain}" in err
    assert f"--epochs {pretrain + 1}" in err


def test_checkpoint_command_names_a_directory_that_is_not_a_checkpoint(tmp_path, capsys):
    assert main(["checkpoint", str(tmp_path)], stdout=io.StringIO()) == 2
    assert "is not a dmt_compile checkpoint: no dmt_checkpoint.json" in capsys.readouterr().err
