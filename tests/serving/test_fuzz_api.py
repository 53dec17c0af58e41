"""Property-based fuzzing of the whole OpenAPI schema (schemathesis) against the real server.

Every check: no server error, every response matches its documented schema and status codes,
schema-valid requests are accepted. /admin/reload is covered by the live swap tests instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveServer, write_config

TOKEN = "fuzz-token"


def test_openapi_schema_holds_under_fuzzing(tiny_db, tiny_store_dir, tiny_models, tmp_path):
    config = write_config(
        tmp_path / "config.yaml",
        db=tiny_db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    server = LiveServer(config, {"RECSYS_ADMIN_TOKEN": TOKEN})
    try:
        cli = Path(sys.executable).parent / "schemathesis"
        result = subprocess.run(
            [
                str(cli),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "60",
                "--seed",
                "7",
                "-H",
                f"Authorization: Bearer {TOKEN}",
                "--exclude-path",
                "/admin/reload",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
