"""Every code block in the user guides (docs/guide_*.md) runs, in order, as a reader would run it.

Each guide gets a fresh copy of a checkout's working state after ``make report``
(``data/demo``, ``models/renewal``, ``.venv``) and its blocks run there:
``python`` blocks in one namespace per guide (or, with ``title="file.py"``,
written to that file for a later block to run), ``toml`` blocks with a title
written to that file (the scheduler guide's alerts file), ``bash`` blocks with bash
``-euo pipefail``, and ``cron`` lines by running their command with ``HOME``
pointing above the checkout. ``text`` blocks are output samples, not code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = sorted(DOCS.glob("guide_*.md"))
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
RUNNABLE = {"python", "bash", "cron"}


CONTRACT_SCORE_FIELDS = [
    ("Renewal_Probability__c", "percent", {"precision": 4, "scale": 1}),
    ("Renewal_Risk_Band__c", "picklist", {"length": 255}),
    ("ARR_At_Risk__c", "currency", {"precision": 16, "scale": 2}),
    ("Renewal_Reason_1__c", "string", {"length": 255}),
    ("Renewal_Reason_2__c", "string", {"length": 255}),
    ("Renewal_Reason_3__c", "string", {"length": 255}),
    ("Renewal_Model_Version__c", "string", {"length": 80}),
    ("Renewal_Scored_At__c", "datetime", {}),
]


def blocks(path: Path) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(path.read_text(encoding="utf-8"))]


def test_the_guides_exist_and_every_block_says_what_it_is():
    assert {p.stem for p in GUIDES} >= {"guide_analyst", "guide_scheduler", "guide_crm_job"}
    for guide in GUIDES:
        found = blocks(guide)
        assert sum(lang in RUNNABLE for lang, _, _ in found) >= 3, guide.name
        # An unlabelled block would silently escape this test.
        assert {lang for lang, _, _ in found} <= RUNNABLE | {"text", "toml"}, guide.name


@pytest.fixture(scope="module")
def trained(demo_org, tmp_path_factory) -> Path:
    from click.testing import CliRunner

    from renewforecast.cli import main

    models = tmp_path_factory.mktemp("guide-model") / "renewal"
    result = CliRunner().invoke(main, ["train", str(demo_org.path), "--out", str(models)])
    assert result.exit_code == 0, result.output
    return models


@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_every_code_block_of_the_guide_runs(guide, demo_org, trained, sf_server, sf_credentials, tmp_path, monkeypatch):
    # The org the nightly job talks to: the local HTTPS Salesforce serving the demo org, with the
    # score fields an administrator creates on Contract, reached through a connected app's JWT flow.
    for name, kind, describe in CONTRACT_SCORE_FIELDS:
        sf_server.add_field("Contract", name, kind, **describe)
    salesforce = {
        "SF_LOGIN_URL": sf_server.url,
        "SF_CLIENT_ID": sf_credentials.client_id,
        "SF_USERNAME": sf_credentials.username,
        "SF_JWT_KEY_FILE": str(sf_credentials.key_file),
        "SF_CA_BUNDLE": str(sf_server.ca_path),
        "SF_POLL_INTERVAL": "0.05",
    }
    for name, value in salesforce.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    checkout = home / "renewforecast"
    shutil.copytree(demo_org.path, checkout / "data" / "demo")
    shutil.copytree(trained, checkout / "models" / "renewal", symlinks=True)
    (checkout / ".venv").symlink_to(Path(sys.executable).parents[1], target_is_directory=True)
    env = {
        **os.environ,
        **salesforce,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MPLBACKEND": "Agg",
    }
    monkeypatch.chdir(checkout)
    namespace: dict = {"__name__": "guide"}
    for number, (lang, info, code) in enumerate(blocks(guide), start=1):
        where = f"{guide.name} block {number} ({lang})"
        if lang == "toml":
            title = re.search(r'title="([^"]+)"', info)
            if title:  # a configuration file a later block may use
                (checkout / title.group(1)).write_text(code, encoding="utf-8")
        elif lang == "python":
            title = re.search(r'title="([^"]+)"', info)
            if title:
                (checkout / title.group(1)).write_text(code, encoding="utf-8")
                continue
            exec(compile(code, where, "exec"), namespace)
        elif lang in ("bash", "cron"):
            if lang == "cron":
                lines = [ln for ln in code.splitlines() if ln.strip() and not ln.startswith("#")]
                commands = [ln.split(None, 5)[5] for ln in lines]
            else:
                commands = [code]
            for command in commands:
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", command],
                    cwd=checkout,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


def test_the_scheduler_guide_explains_every_exit_code_a_run_can_end_with():
    from renewforecast import cli
    from renewforecast.reports import runner as reporting

    codes = {getattr(reporting, name) for name in reporting.__all__ if name.startswith("EXIT_")} | {0}
    # `report --source URL` reads a database, and `--results-db URL` writes one.
    codes |= {cli.EXIT_NOT_AUTHORISED, cli.EXIT_UNREACHABLE}
    # `--alerts`: published, but the digest did not reach every channel.
    codes |= {cli.EXIT_ALERTS_NOT_SENT}
    text = (DOCS / "guide_scheduler.md").read_text(encoding="utf-8")
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", text, flags=re.MULTILINE)}
    assert documented == codes
