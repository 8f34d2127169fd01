"""Actors: a span per message, with the message, the reply and the actor's state diff.

The Python analogue of tracing an Elixir GenServer's callbacks. An actor here is any object
whose state is its instance and that handles one message per call of a message method
(``receive``, ``on_receive`` or ``handle``); :func:`trace_actor` records each call as a span, and
:func:`untrace_actor` takes that off again. Library actors need no decorator: the pykka
instrumentor (:mod:`execscope.instrumentors.pykka`) records every pykka actor's messages, with
the sender's trace carried across the mailbox.

Example::

    from execscope.instrumentors.actors import trace_actor

    @trace_actor
    class Counter:
        def __init__(self) -> None:
            self.count = 0

        def receive(self, message: int) -> int:
            self.count += message
            return self.count

``Counter().receive(2)`` makes a span ``Counter receive`` with ``execscope.message = "2"``,
``execscope.reply = "2"`` and ``execscope.state.diff = {"v":1,"changed":{"count":["0","2"]}}``.
"""

from execscope.instrumentors.actors._trace import trace_actor, untrace_actor

__all__ = ["trace_actor", "untrace_actor"]
