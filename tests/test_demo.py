"""`vsm demo` end to end: simulated world → HTTP → PyGithub → DuckDB → views → terminal table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.cli import main
from collector.store import Store


def test_demo_runs_the_whole_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    output = capsys.readouterr().out
    for stage in ("code", "review", "merge", "build", "staging", "release"):
        assert re.search(rf"^{stage}\s+\d+\s", output, re.MULTILINE), f"no {stage} row in:\n{output}"
    assert re.search(r"lead time p50 \d+[dhms]", output)
    assert re.search(r"flow efficiency \d+\.\d%", output)
    cost = re.search(r"(\d+) GitHub requests, (\d+\.\d+) per merged PR \(graphql\)", output)
    assert cost and 0 < float(cost.group(2)) <= 0.2  # the target of the GraphQL transport on the demo world
    assert re.search(r"Bottleneck: \w+ holds \d+\.\d% of all waiting", output)
    assert "┌" in output and "wait " in output and "proc " in output  # the terminal value stream map
    report = re.search(r"weekly flow report for (\d{4}-W\d\d) .*: (\S+\.html)", output)
    assert report and Path(report.group(2)).exists()
    config = tmp_path / "demo" / "vsm.toml"
    assert f"vsm query --config {config}" in output
    # the closing hints lead on to the web app and the lakehouse export
    assert f"vsm serve --config {config}" in output and "vsm demo --serve" in output
    assert f"vsm export --config {config} --out {tmp_path / 'demo' / 'export'}" in output

    with Store(tmp_path / "demo" / "vsm.duckdb") as store:
        changes, deployed = store.query("SELECT count(*), count(deployed_at) FROM changes")[1][0]
        assert changes > 100 and 0 < deployed < changes
        stages = store.query("SELECT DISTINCT stage FROM stage_times ORDER BY ALL")[1]
        # every default stage: build from Jenkins CI, staging and release from Jenkins and GitHub deployments
        assert [s for (s,) in stages] == ["build", "code", "merge", "release", "review", "staging"]
        sources = dict(store.query("SELECT source, count(*) FROM deployments GROUP BY ALL")[1])
        assert sources.keys() == {"github", "jenkins"}
        # each repo deploys through one mechanism: no deployment is counted twice
        assert store.query("SELECT count(*) FROM (SELECT repo FROM deployments GROUP BY repo "
                           "HAVING count(DISTINCT source) > 1)")[1] == [(0,)]

    # every example query in the README answers on the demo's database (those over an export's DIR/ folder
    # are run by tests/test_export.py against a real export)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    examples = [q.strip() for block in re.findall(r"```sql\n(.*?)```", readme, re.DOTALL)
                for q in block.split(";") if q.strip() and "'DIR/" not in q]
    assert len(examples) >= 5
    with Store(tmp_path / "demo" / "vsm.duckdb", read_only=True) as store:
        for sql in examples:
            assert store.query(sql)[1], f"README example returned nothing: {sql}"

    # explain a change, and the changes behind a stage's figure for a week
    with Store(tmp_path / "demo" / "vsm.duckdb", read_only=True) as store:
        change_id, week = store.query("SELECT change_id, week FROM changes WHERE deployed_at IS NOT NULL "
                                      "AND first_review_at IS NOT NULL ORDER BY change_id LIMIT 1")[1][0]
        reviews = store.query("SELECT count(*) FROM stage_times WHERE stage = 'review' AND change_id IN "
                              "(SELECT change_id FROM changes WHERE week = ? AND NOT is_bot)", [week])[1][0][0]
    capsys.readouterr()
    assert main(["explain", "--config", str(config), change_id]) == 0
    explained = capsys.readouterr().out
    assert explained.startswith(change_id)
    for heading in ("Timeline", "Reviews", "Delivery", "Stages"):
        assert f"\n{heading}\n" in explained
    assert "review_first" in explained and "deploy_finished:production" in explained
    iso = week.isocalendar()
    assert main(["explain", "--config", str(config), "--stage", "review", "--week", f"{iso.year}-W{iso.week:02d}"]) == 0
    listed = capsys.readouterr().out
    assert f"{reviews} change" in listed.splitlines()[0]
    assert main(["explain", "--config", str(config), "petclinic/petclinic-web#999999"]) == 2
    assert "is not a merged pull request" in capsys.readouterr().err

    # the written config works for queries after the demo (the database outlives the servers)
    assert main(["query", "--config", str(config), "--format", "csv",
                 "SELECT count(*) AS n FROM changes WHERE deployed_at IS NOT NULL"]) == 0
    assert capsys.readouterr().out.strip() == f"n\n{deployed}"


def test_query_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "vsm.toml"
    config.write_text('[database]\npath = "x.duckdb"\n', encoding="utf-8")
    assert main(["query", "--config", str(config), "SELECT 1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no database at" in err[0] and "vsm collect" in err[0]

    Store(tmp_path / "x.duckdb").close()
    capsys.readouterr()
    assert main(["query", "--config", str(config), "SELECT * FROM no_such_table"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_table" in err[0]


def test_demo_serve_prints_the_web_app_url_keeps_the_world_up_and_stops_on_sigterm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import subprocess
    import sys

    import requests

    from collector.demo import DEMO_PAGERDUTY_TOKEN_ENV

    # what `vsm demo --serve` tells the user to export in the shell that runs vsm collect
    monkeypatch.setenv(DEMO_PAGERDUTY_TOKEN_ENV, "demo-pagerduty-token")
    folder = tmp_path / "served"
    server = subprocess.Popen([sys.executable, "-m", "collector.cli", "demo", "--serve", "--dir", str(folder),
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:  # the demo's lines, then the URL once the app listens
            lines.append(line)
            if "http://" in line:
                break
        found = re.search(r"http://127\.0\.0\.1:(\d+)/map", lines[-1])
        assert found, lines
        url = found.group(0)
        # the click path: the map, its bottleneck stage, that stage's longest wait, the change's timeline
        world = requests.get(url + ".json", timeout=10).json()
        neck = world["totals"]["bottleneck"]
        assert f'href="/stage?stage={neck}"' in requests.get(url, timeout=10).text
        stage = requests.get(url.replace("/map", "/stage.json"), params={"stage": neck}, timeout=10).json()
        slowest = stage["items"][0]
        timeline = requests.get(url.replace("/map", "/change.json"), params={"id": slowest["change_id"]},
                                timeout=10).json()
        assert [s["wait_s"] for s in timeline["stages"] if s["stage"] == neck] == [slowest["wait_s"]]
        # the simulators stay up: a collect against the written config still works, then a map
        config = folder / "vsm.toml"
        assert main(["collect", "--config", str(config)]) == 0
        assert main(["map", "--config", str(config)]) == 0
        with Store(folder / "vsm.duckdb", read_only=True) as store:
            assert store.query("SELECT count(*) FROM changes")[1][0][0] > 100
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "simulated servers stopped" in err
