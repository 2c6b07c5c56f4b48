"""`feature-lens serve` from the command line on a local model folder and SAE folders: the app it
would run answers on the printed address only (uvicorn itself is replaced by a test client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from feature_lens.cli import main
from tests.test_cli import _lens_args, folders  # noqa: F401  (fixture)


def test_serve_builds_the_app_for_the_given_lens(
    folders: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from starlette.testclient import TestClient

    from feature_lens.serve import server

    seen: dict[str, Any] = {}

    def fake_serve(app: Any, *, host: str, port: int) -> None:
        seen.update(host=host, port=port)
        with TestClient(app, base_url=f"http://127.0.0.1:{port}") as client:
            seen["info"] = client.get("/api/info").json()
            seen["page"] = client.get("/").status_code
        with TestClient(app, base_url="http://evil.example") as client:
            seen["foreign"] = client.get("/").status_code

    monkeypatch.setattr(server, "serve", fake_serve)
    out = tmp_path / "graphs"
    assert main(["serve", *_lens_args(folders), "--port", "0", "--out", str(out)]) == 0
    assert seen["host"] == "127.0.0.1"
    assert 0 < seen["port"] < 65536
    assert seen["info"]["sites"] == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert seen["page"] == 200
    assert seen["foreign"] == 421
    assert f"http://127.0.0.1:{seen['port']}/" in capsys.readouterr().err
    assert out.is_dir()


def test_serve_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 1
    assert "--port 70000" in capsys.readouterr().err
    assert main(["serve", "--max-tokens", "0", "--port", "1"]) == 1
    assert "--max-tokens" in capsys.readouterr().err
