"""Regressions for misrecognitions found on real projects (``python -m bench.analyzer_eval``).

Each test reduces one real-world idiom to a few lines: example apps run as scripts from their
own directory, star imports of actor libraries, Celery canvas calls, eventlet queues, nested
click groups, Flask-SQLAlchemy query chains on injected models, and ``Annotated`` aliases.
"""

from __future__ import annotations

from pathlib import Path

from analyzer_helpers import analyze_files


def test_bare_import_of_a_sibling_module_in_a_script_directory_resolves(tmp_path: Path) -> None:
    # celery examples/stamping: tasks.py does `from config import app` (no __init__.py).
    analysis = analyze_files(
        tmp_path,
        {
            "stamping/config.py": "from celery import Celery\napp = Celery('x')\n",
            "stamping/tasks.py": "from config import app\n\n@app.task\ndef mul(x, y):\n    return x * y\n",
            # examples/django: `from demoapp.models import Widget` with django/ on sys.path.
            "site/demoapp/__init__.py": "",
            "site/demoapp/models.py": (
                "from django.db import models\n\nclass Widget(models.Model):\n    pass\n"
            ),
            "site/demoapp/tasks.py": (
                "from celery import shared_task\nfrom demoapp.models import Widget\n\n"
                "@shared_task\ndef count():\n    return Widget.objects.count()\n"
            ),
        },
    )
    assert "stamping.tasks:mul" in analysis.names_with_role("task")
    assert "site.demoapp.tasks:count" in analysis.names_with_role("db")


def test_imports_inside_a_package_are_never_rebased_onto_a_sibling(tmp_path: Path) -> None:
    # proj/celery.py importing the real celery must not resolve to itself.
    analysis = analyze_files(
        tmp_path,
        {
            "proj/__init__.py": "",
            "proj/celery.py": (
                "from celery import Celery\napp = Celery('proj')\n\n@app.task\ndef t():\n    pass\n"
            ),
        },
    )
    assert "proj.celery:t" in analysis.names_with_role("task")


def test_star_imported_actor_base_and_project_subclasses_are_actors(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "encoder.py": (
                "from thespian.actors import *\n\n"
                "class Encoder(ActorTypeDispatcher):\n"
                "    def receiveMsg_str(self, message, sender):\n        self.send(sender, len(message))\n"
            ),
            "morse.py": "from encoder import Encoder\n\nclass Morse(Encoder):\n    pass\n",
            "plain.py": "from os.path import *\n\nclass Box(list):\n    pass\n",
        },
    )
    actors = analysis.names_with_role("actor")
    assert {"encoder:Encoder", "morse:Morse"} <= actors
    assert "plain:Box" not in actors  # builtins still win over a star import


def test_celery_canvas_and_bound_task_replacement_are_producers(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "tasks.py": (
                "from celery import chord, group, signature, shared_task\n\n"
                "@shared_task\ndef add(x, y):\n    return x + y\n\n"
                "def fan_out():\n    return group(add.s(i, i) for i in range(3)).apply_async()\n\n"
                "def one():\n    add.si(1, 2).delay()\n\n"
                "def gather(cb):\n    chord(add.s(1, 1) for _ in range(2))(cb)\n\n"
                "def later(cb):\n    signature(cb).delay()\n\n"
                "@shared_task(bind=True)\ndef swap(self, x):\n    return self.replace(add.s(x, x))\n\n"
                "def local(x):\n    return add(x, x)\n"
            ),
        },
    )
    producers = analysis.names_with_role("producer")
    assert {"tasks:fan_out", "tasks:one", "tasks:gather", "tasks:later", "tasks:swap"} <= producers
    assert "tasks:local" not in producers


def test_eventlet_queue_worker_loop_is_a_consumer_task(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "pool.py": (
                "from eventlet.queue import LightQueue\n\n"
                "class Pool:\n"
                "    def __init__(self):\n        self.inqueue = LightQueue()\n\n"
                "    def submit(self, job):\n        self.inqueue.put(job)\n\n"
                "    def _worker(self):\n        q = self.inqueue\n"
                "        while 1:\n            job = q.get()\n            job()\n"
            ),
        },
    )
    assert "pool:Pool.submit" in analysis.names_with_role("producer")
    assert "pool:Pool._worker" in analysis.names_with_role("consumer")
    assert "pool:Pool._worker" in analysis.names_with_role("task")


def test_commands_of_a_group_nested_in_a_project_click_group_are_cli(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "cli/__init__.py": "",
            "cli/main.py": "import click\n\n@click.group()\ndef root():\n    pass\n",
            "cli/users.py": (
                "from cli.main import root\n\n@root.group()\ndef users():\n    pass\n\n"
                "@users.command('new')\ndef new_user():\n    pass\n"
            ),
        },
    )
    assert {"cli.users:users", "cli.users:new_user"} <= analysis.names_with_role("cli")


def test_query_chain_on_an_injected_model_is_db_but_a_plain_first_is_not(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "svc.py": (
                "class Validator:\n"
                "    def __init__(self, users):\n        self.users = users\n\n"
                "    def validate(self, name):\n"
                "        return self.users.query.filter(self.users.name == name).count()\n\n"
                "def pick(items):\n    return items.filter(1).first()\n"
            ),
        },
    )
    db = analysis.names_with_role("db")
    assert "svc:Validator.validate" in db
    assert "svc:pick" not in db


def test_session_typed_through_an_annotated_alias_is_db(tmp_path: Path) -> None:
    analysis = analyze_files(
        tmp_path,
        {
            "api.py": (
                "from typing import Annotated\n"
                "from fastapi import Depends\n"
                "from sqlmodel import Session\n\n"
                "def get_session():\n    yield None\n\n"
                "SessionDep = Annotated[Session, Depends(get_session)]\n\n"
                "def read(hero_id: int, session: SessionDep):\n    return session.get(object, hero_id)\n"
            ),
        },
    )
    assert "api:read" in analysis.names_with_role("db")
