"""`execscope analyze`: the terminal report, JSON, the plan file, the graph picture and the model hook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from conftest import clean_environment, execscope
from execscope.plan import load_plan

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_report_names_roles_with_evidence_flows_and_the_plan(tmp_path: Path) -> None:
    result = execscope("analyze", FIXTURES / "celery_tasks", env=clean_environment(), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("analyzed ")
    for section in (
        "ROLES (",
        "MOST COMPLEX FUNCTIONS (",
        "MESSAGE FLOWS (",
        "PLAN (",
        "estimated overhead:",
    ):
        assert section in out
    assert "worker.tasks:send_email" in out
    assert "enqueue" in out


def test_json_has_the_whole_analysis_and_the_plan_writes_a_loadable_file(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.toml"
    result = execscope(
        "analyze",
        FIXTURES / "fastapi_app",
        "--json",
        "--plan",
        plan_file,
        env=clean_environment(),
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"analysis", "plan", "llm"}
    assert {"recognitions", "functions", "flows", "lifecycle", "skipped"} <= set(document["analysis"])
    plan = load_plan(plan_file)
    assert [target.pattern for target in plan.targets] == [t["pattern"] for t in document["plan"]["targets"]]
    assert plan.estimate is not None and "basis" in document["plan"]["estimate"]


@pytest.mark.parametrize("suffix", [".dot", ".svg", ".html"])
def test_the_graph_is_written_as_dot_svg_or_an_html_page(tmp_path: Path, suffix: str) -> None:
    graph = tmp_path / f"graph{suffix}"
    result = execscope(
        "analyze", FIXTURES / "pubsub", "--graph", graph, env=clean_environment(), cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    text = graph.read_text()
    if suffix == ".dot":
        assert text.startswith("digraph execscope {")
    else:
        svg = text if suffix == ".svg" else text[text.index("<svg") : text.index("</svg>") + len("</svg>")]
        root = ElementTree.fromstring(svg)
        labels = {element.text for element in root.iter("{http://www.w3.org/2000/svg}text")}
        assert {"events.bus:announce", "orders.created", "publish"} <= labels
        assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) >= 5


def test_a_graph_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    result = execscope(
        "analyze", FIXTURES / "pubsub", "--graph", tmp_path / "g.png", env=clean_environment(), cwd=tmp_path
    )
    assert result.returncode == 2
    assert ".dot, .svg or .html" in result.stderr


def test_broken_files_are_reported_and_the_rest_is_analysed(tmp_path: Path) -> None:
    result = execscope("analyze", FIXTURES / "broken", "--json", env=clean_environment(), cwd=tmp_path)
    document = json.loads(result.stdout)
    assert document["analysis"]["skipped"]
    assert document["analysis"]["modules"]


def test_asking_for_the_model_without_an_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    result = execscope("analyze", FIXTURES / "stateful", "--llm", env=clean_environment(), cwd=tmp_path)
    assert result.returncode == 2
    assert "EXECSCOPE_LLM_URL" in result.stderr


@pytest.fixture
def chat_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OpenAI-compatible endpoint on loopback that suggests one valid and one invalid change."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": request})
            suggestion = {
                "changes": [
                    {"pattern": "app.extra:*", "level": "timing", "reason": "hot helpers"},
                    {"pattern": "app.bad:*", "level": "everything"},
                ],
                "remove": [],
            }
            body = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": json.dumps(suggestion)}}]}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", seen
    server.shutdown()
    server.server_close()


def test_the_model_hook_merges_valid_suggestions_and_rejects_invalid_ones(
    tmp_path: Path, chat_endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = chat_endpoint
    plan_file = tmp_path / "plan.toml"
    env = clean_environment(
        EXECSCOPE_LLM_URL=url, EXECSCOPE_LLM_API_KEY="key-123", EXECSCOPE_LLM_MODEL="local"
    )

    result = execscope("analyze", FIXTURES / "stateful", "--llm", "--plan", plan_file, env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    (request,) = seen
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer key-123"
    assert request["body"]["model"] == "local"
    plan = load_plan(plan_file)
    added = {target.pattern: target for target in plan.targets}["app.extra:*"]
    assert added.level == "timing"
    assert added.reason == "hot helpers (suggested by local)"
    assert "app.bad:*" not in {target.pattern for target in plan.targets}
    assert plan.generated_by.endswith("+llm:local")
    assert "llm: added app.extra:* -> timing" in result.stdout
    assert "llm: rejected change app.bad:*" in result.stdout
