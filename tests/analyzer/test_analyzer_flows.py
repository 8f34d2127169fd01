"""Message flows and lifecycle events."""

from __future__ import annotations

from pathlib import Path

from analyzer_helpers import fixture_path

from execscope.analyzer import Analysis, analyze_project, render_graph_dot


def _edges(analysis: Analysis) -> set[tuple[str, str, str]]:
    return {(e.source, e.kind, e.target) for e in analysis.flows.edges}


def test_literal_channel_publish_reaches_the_matching_psubscribe_pattern() -> None:
    edges = _edges(analyze_project(fixture_path("pubsub")))
    assert ("events.bus:announce", "publish", "channel:orders.created") in edges
    assert ("channel:orders.created", "matches", "pattern:orders.*") in edges
    assert ("pattern:orders.*", "psubscribe", "events.bus:listen") in edges


def test_kafka_topic_links_producer_to_consumer() -> None:
    edges = _edges(analyze_project(fixture_path("pubsub")))
    assert ("events.bus:stream", "send", "channel:audit") in edges
    assert ("channel:audit", "poll", "events.bus:consume") in edges


def test_subscribing_to_several_literal_channels_makes_one_edge_each() -> None:
    edges = _edges(analyze_project(fixture_path("pubsub")))
    assert ("channel:alerts", "subscribe", "events.bus:legacy") in edges
    assert ("channel:alerts.critical", "subscribe", "events.bus:legacy") in edges


def test_task_dispatch_edges_point_at_the_task_function() -> None:
    edges = _edges(analyze_project(fixture_path("celery_tasks")))
    assert ("worker.tasks:schedule", "enqueue", "worker.tasks:send_email") in edges
    assert (
        "worker.tasks:schedule",
        "enqueue",
        "worker.tasks:build_report",
    ) in edges  # also via send_task name
    assert ("worker.jobs:submit", "enqueue", "worker.jobs:cleanup") in edges


def test_queue_put_and_get_on_the_same_attribute_meet_at_one_queue_node() -> None:
    edges = _edges(analyze_project(fixture_path("actors")))
    assert ("actors.mailbox:start", "put", "queue:actors.mailbox:Greeter.inbox") in edges
    assert ("queue:actors.mailbox:Greeter.inbox", "get", "actors.mailbox:Greeter.run") in edges


def test_http_client_call_to_an_own_route_links_to_its_handler() -> None:
    edges = _edges(analyze_project(fixture_path("fastapi_app")))
    assert ("shop.client:fetch_user", "http", "route:GET /users/{user_id}") in edges
    assert ("route:GET /users/{user_id}", "routes", "shop.routers.users:read_user") in edges


def test_lifecycle_events_cover_threads_and_asyncio_tasks() -> None:
    events = {(e.qualname, e.action, e.subject) for e in analyze_project(fixture_path("actors")).lifecycle}
    assert {
        ("main", "start", "asyncio_task"),
        ("main", "cancel", "asyncio_task"),
        ("start", "create", "thread"),
        ("start", "start", "thread"),
        ("start", "join", "thread"),
    } <= events


def test_lifecycle_events_cover_processes_executors_and_servers(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        "import asyncio, multiprocessing, uvicorn\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from http.server import HTTPServer\n"
        "def run():\n"
        "    p = multiprocessing.Process(target=print)\n"
        "    p.start()\n"
        "    p.join()\n"
        "    pool = ThreadPoolExecutor(4)\n"
        "    pool.submit(print)\n"
        "    pool.shutdown()\n"
        "    server = HTTPServer(('', 0), None)\n"
        "    server.serve_forever()\n"
        "    uvicorn.run('app:app')\n"
        "    ', '.join(['a'])\n"
        "async def main():\n"
        "    async with asyncio.TaskGroup() as tg:\n"
        "        tg.create_task(asyncio.sleep(1))\n"
    )
    events = {(e.qualname, e.action, e.subject) for e in analyze_project(tmp_path).lifecycle}
    assert events == {
        ("run", "create", "process"),
        ("run", "start", "process"),
        ("run", "join", "process"),
        ("run", "create", "executor"),
        ("run", "submit", "executor"),
        ("run", "shutdown", "executor"),
        ("run", "create", "server"),
        ("run", "run", "server"),
        ("main", "create", "task_group"),
        ("main", "start", "asyncio_task"),
    }


def test_flask_app_run_under_main_guard_is_a_server_run() -> None:
    events = analyze_project(fixture_path("flask_app")).lifecycle
    assert [(e.module, e.action, e.subject) for e in events] == [("wsgi", "run", "server")]


def test_dot_rendering_contains_roles_and_flow_edges_and_is_valid_graphviz_shape() -> None:
    dot = render_graph_dot(analyze_project(fixture_path("pubsub")))
    assert dot.startswith("digraph execscope {") and dot.rstrip().endswith("}")
    assert '"events.bus:announce" -> "channel:orders.created" [label="publish"];' in dot
    assert 'label="events.bus:legacy\\n[consumer, producer]"' in dot
    assert dot.count("{") == dot.count("}")
