"""execscope's own settings: one typed table, one precedence rule (explicit > env > file > default)."""

from execscope.settings._loader import (
    LoadedSettings,
    Origin,
    Problem,
    get_settings,
    load_settings,
    settings_as_dict,
    use_settings,
)
from execscope.settings._model import (
    CONFIG_FILE_ENV,
    Settings,
    SettingSpec,
    format_setting,
    format_value,
    setting_specs,
    settings_table_markdown,
)

__all__ = [
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
