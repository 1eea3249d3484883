import pytest

from squeezelab.cli import main


@pytest.mark.slow
def test_demo_trains_every_model_and_writes_a_report(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "--epochs-scale", "0.05", "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("dense_ae", "squeeze_ae", "contractive_ae", "squeezenet_cifar", "alexnet_cifar"):
        assert name in out
        assert (tmp_path / "demo" / name / "best.safetensors").exists()
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| squeeze_ae | autoencoder | 35,938 |" in report
    assert (tmp_path / "demo" / "plots" / "reconstructions.png").exists()

    assert main(["demo", "--out-dir", str(tmp_path)]) == 2  # a second run never replaces the report silently
    assert "already holds a demo report; pass --overwrite" in capsys.readouterr().err
