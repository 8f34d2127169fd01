"""The public surface is small and changes only on purpose: this test fails when it changes."""

from __future__ import annotations

import execscope
import execscope.settings
import execscope.store


def test_top_level_exports() -> None:
    assert sorted(execscope.__all__) == ["__version__", "configure"]


def test_store_exports() -> None:
    assert sorted(execscope.store.__all__) == [
        "DATABASE_NAME",
        "SCHEMA_VERSION",
        "SpanFilter",
        "StoreSpanExporter",
        "TraceStore",
        "enforce_retention",
    ]


def test_settings_exports() -> None:
    assert sorted(execscope.settings.__all__) == sorted(
        [
            "CONFIG_FILE_ENV",
            "LoadedSettings",
            "Origin",
            "Problem",
            "SettingSpec",
            "Settings",
            "format_setting",
            "format_value",
            "get_settings",
            "load_settings",
            "setting_specs",
            "settings_as_dict",
            "settings_table_markdown",
            "use_settings",
        ]
    )


def test_instrumentor_exports() -> None:
    import execscope.instrumentors
    import execscope.instrumentors.actors
    import execscope.instrumentors.celery
    import execscope.instrumentors.pykka
    import execscope.instrumentors.redis_pubsub
    import execscope.instrumentors.starlette
    import execscope.instrumentors.subprocess

    assert sorted(execscope.instrumentors.__all__) == [
        "INSTRUMENTORS",
        "InstrumentorEntry",
        "instrument_all",
        "uninstrument_all",
    ]
    assert execscope.instrumentors.actors.__all__ == ["trace_actor", "untrace_actor"]
    assert execscope.instrumentors.celery.__all__ == ["CeleryInstrumentor"]
    assert execscope.instrumentors.pykka.__all__ == ["PykkaInstrumentor"]
    assert execscope.instrumentors.redis_pubsub.__all__ == ["RedisPubSubInstrumentor"]
    assert execscope.instrumentors.starlette.__all__ == ["StarletteInstrumentor"]
    assert execscope.instrumentors.subprocess.__all__ == [
        "SubprocessInstrumentor",
        "continue_from_environment",
    ]


def test_tracing_exports() -> None:
    import execscope.tracing

    assert execscope.tracing.__all__ == ["ExecscopeTracerProvider"]
