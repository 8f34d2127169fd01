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
