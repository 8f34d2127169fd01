"""Role recognition, one behaviour per test: what proves a role, and what must not."""

from __future__ import annotations

from pathlib import Path

from analyzer_helpers import analyze_files, fixture_path

from execscope.analyzer import Analysis, Recognition, Role, analyze_project


def _analyse(fixture: str) -> Analysis:
    return analyze_project(fixture_path(fixture))


def _recognition(analysis: Analysis, name: str, role: Role) -> Recognition:
    found = analysis.recognition(name, role)
    assert found is not None, f"{name} not recognised as {role}; roles: {analysis.roles_of(name)}"
    return found


def test_fastapi_route_through_an_import_alias_is_a_web_entry_with_decorator_evidence() -> None:
    rec = _recognition(_analyse("fastapi_app"), "shop.main:get_item", "web_entry")
    (evidence,) = rec.evidence
    assert evidence.kind == "decorator"
    assert evidence.line == 15
    assert "fastapi.FastAPI().get" in evidence.detail


def test_fastapi_app_and_router_objects_are_web_entries() -> None:
    analysis = _analyse("fastapi_app")
    assert _recognition(analysis, "shop.main:app", "web_entry").kind == "object"
    assert _recognition(analysis, "shop.routers.users:router", "web_entry").kind == "object"


def test_fastapi_websocket_endpoint_is_a_web_entry_with_ws_route() -> None:
    analysis = _analyse("fastapi_app")
    _recognition(analysis, "shop.main:feed", "web_entry")
    assert any(r.method == "WS" and r.path == "/ws" for r in analysis.routes)


def test_router_prefix_is_part_of_the_declared_route_path() -> None:
    routes = {(r.method, r.path, r.handler) for r in _analyse("fastapi_app").routes}
    assert ("GET", "/users/{user_id}", "shop.routers.users:read_user") in routes


def test_a_get_method_on_a_plain_object_is_not_a_route() -> None:
    analysis = _analyse("fastapi_app")
    assert analysis.roles_of("shop.routers.users:lookup") == ()
    assert analysis.roles_of("shop.routers.users:Cache") == ()


def test_a_project_class_named_fastapi_does_not_make_routes() -> None:
    analysis = _analyse("library")
    assert analysis.roles_of("mathlib.fakeweb:handler") == ()
    assert analysis.roles_of("mathlib.fakeweb:app") == ()


def test_flask_blueprint_route_and_method_view_are_web_entries() -> None:
    analysis = _analyse("flask_app")
    assert (
        "flask.Blueprint().route" in _recognition(analysis, "blog.views:show", "web_entry").evidence[0].detail
    )
    base = _recognition(analysis, "blog.views:PostAPI", "web_entry").evidence[0]
    assert base.kind == "base_class"


def test_flask_app_from_a_factory_function_is_recognised_as_an_app_object() -> None:
    _recognition(_analyse("flask_app"), "wsgi:app", "web_entry")


def test_flask_add_url_rule_view_func_is_a_web_entry() -> None:
    rec = _recognition(_analyse("flask_app"), "blog.factory:health", "web_entry")
    assert rec.evidence[0].kind == "call"


def test_django_urlpatterns_make_function_and_class_based_views_web_entries() -> None:
    analysis = _analyse("django_app")
    index = _recognition(analysis, "mysite.polls.views:index", "web_entry")
    assert "urls.py" in index.evidence[0].detail  # evidence points at the path(...) call
    _recognition(analysis, "mysite.polls.views:VoteView", "web_entry")
    _recognition(analysis, "mysite.asgi:application", "web_entry")


def test_django_models_and_manager_queries_are_db_access() -> None:
    analysis = _analyse("django_app")
    assert _recognition(analysis, "mysite.polls.models:Question", "db").evidence[0].kind == "base_class"
    _recognition(analysis, "mysite.polls.views:index", "db")


def test_celery_shared_task_is_recognised_as_task_with_decorator_evidence() -> None:
    rec = _recognition(_analyse("celery_tasks"), "worker.tasks:send_email", "task")
    assert rec.evidence[0].kind == "decorator"
    assert "celery.shared_task" in rec.evidence[0].detail
    assert rec.confidence >= 0.9


def test_celery_app_task_resolves_an_aliased_module_import_across_files() -> None:
    rec = _recognition(_analyse("celery_tasks"), "worker.tasks:build_report", "task")
    assert "celery.Celery().task" in rec.evidence[0].detail


def test_dramatiq_actor_and_rq_enqueue_target_are_tasks() -> None:
    analysis = _analyse("celery_tasks")
    _recognition(analysis, "worker.jobs:resize_image", "task")
    rq = _recognition(analysis, "worker.jobs:cleanup", "task")
    assert "enqueue" in rq.evidence[0].detail


def test_decorators_merely_named_task_or_shared_task_are_not_tasks() -> None:
    analysis = _analyse("celery_tasks")
    assert analysis.roles_of("worker.fake:not_a_celery_task") == ()
    assert analysis.roles_of("worker.fake:also_not_a_task") == ()


def test_delay_apply_async_and_send_task_make_the_caller_a_producer() -> None:
    rec = _recognition(_analyse("celery_tasks"), "worker.tasks:schedule", "producer")
    details = " ".join(e.detail for e in rec.evidence)
    assert ".delay()" in details and ".apply_async()" in details and "send_task" in details


def test_pykka_actor_is_an_actor_by_base_class_and_stateful_by_assignment() -> None:
    analysis = _analyse("actors")
    assert _recognition(analysis, "actors.bank:Account", "actor").evidence[0].kind == "base_class"
    stateful = _recognition(analysis, "actors.bank:Account", "stateful").evidence[0]
    assert "self.balance += " in stateful.detail and "on_receive" in stateful.detail


def test_class_with_handle_and_a_queue_mailbox_is_an_actor() -> None:
    rec = _recognition(_analyse("actors"), "actors.mailbox:Greeter", "actor")
    assert "mailbox self.inbox" in rec.evidence[0].detail


def test_handle_methods_of_logging_and_socketserver_handlers_are_not_actors() -> None:
    analysis = _analyse("actors")
    assert analysis.roles_of("actors.handlers:LogHandler") == ()
    assert analysis.roles_of("actors.handlers:TCPHandler") == ("stateful",)


def test_asyncio_worker_loop_is_a_task_and_a_queue_consumer() -> None:
    analysis = _analyse("actors")
    assert _recognition(analysis, "actors.mailbox:worker", "task").evidence[0].kind == "loop"
    _recognition(analysis, "actors.mailbox:worker", "consumer")


def test_stateful_class_needs_assignment_outside_the_constructor() -> None:
    analysis = _analyse("stateful")
    assert analysis.names_with_role("stateful") == {
        "counter.state:Counter",
        "counter.state:LRU",
        "counter.state:Session",
    }
    assert analysis.roles_of("counter.state:Point") == ()


def test_property_setter_assignment_makes_a_class_stateful() -> None:
    rec = _recognition(_analyse("stateful"), "counter.state:Session", "stateful")
    assert "self._user = value" in rec.evidence[0].detail


def test_calling_a_project_method_named_put_is_not_a_queue_producer() -> None:
    assert _analyse("stateful").roles_of("counter.state:warm") == ()


def test_sqlalchemy_sqlite_and_psycopg_access_is_db() -> None:
    analysis = _analyse("db_module")
    assert "sqlalchemy" in _recognition(analysis, "store.db:get_user", "db").evidence[0].detail
    assert "sqlite3.connect" in _recognition(analysis, "store.db:raw_count", "db").evidence[0].detail
    assert "psycopg2" in _recognition(analysis, "store.db:pg_names", "db").evidence[0].detail
    _recognition(analysis, "store.db:User", "db")


def test_an_execute_method_without_sql_or_db_names_is_not_db() -> None:
    analysis = _analyse("db_module")
    assert analysis.roles_of("store.jobs:run") == ()
    assert analysis.roles_of("store.db:format_row") == ()


def test_redis_publish_and_psubscribe_make_producer_and_consumer() -> None:
    analysis = _analyse("pubsub")
    assert "orders.created" in _recognition(analysis, "events.bus:announce", "producer").evidence[0].detail
    assert any(
        "orders.*" in e.detail for e in _recognition(analysis, "events.bus:listen", "consumer").evidence
    )


def test_domain_subscribe_with_a_non_literal_argument_is_not_a_consumer() -> None:
    analysis = _analyse("pubsub")
    assert analysis.roles_of("events.newsletter:signup") == ()
    assert analysis.roles_of("events.newsletter:signup_typed") == ()


def test_click_group_subcommand_typer_and_argparse_are_cli_entry_points() -> None:
    analysis = _analyse("cli")
    assert (
        "click group tools.cmd_click:cli"
        in _recognition(analysis, "tools.cmd_click:greet", "cli").evidence[0].detail
    )
    _recognition(analysis, "tools.cmd_typer:hello", "cli")
    _recognition(analysis, "tools.cmd_typer:main", "cli")
    assert _recognition(analysis, "tools.cmd_argparse", "cli").evidence[0].kind == "guard"


def test_module_with_no_role_evidence_is_plain_library_code() -> None:
    analysis = _analyse("library")
    assert analysis.names_with_role("library") == {"mathlib.vectors", "mathlib.fakeweb"}
    assert {r.role for r in analysis.recognitions} == {"library"}


def test_project_subclass_of_flask_is_read_through_its_base(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "app.py": (
                "from flask import Flask\n"
                "class MyApp(Flask):\n    pass\n"
                "app = MyApp(__name__)\n"
                "@app.route('/x')\ndef x():\n    return 'x'\n"
            )
        },
    )
    assert analysis.names_with_role("web_entry") == {"app:app", "app:x"}


def test_annotated_parameter_types_resolve_receivers(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "svc.py": (
                "import queue\nfrom typing import Optional\n"
                "def feed(q: 'Optional[queue.Queue]', item):\n    q.put(item)\n"
            )
        },
    )
    assert analysis.roles_of("svc:feed") == ("producer",)


def test_local_name_shadowing_an_app_object_is_not_resolved_to_it(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "m.py": (
                "from fastapi import FastAPI\napp = FastAPI()\n"
                "def make(app):\n"
                "    @app.get('/x')\n"
                "    def inner():\n        return 1\n"
                "    return inner\n"
            )
        },
    )
    assert analysis.roles_of("m:make.<locals>.inner") == ()
