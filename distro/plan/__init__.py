"""The instrumentation-plan schema (``execscope.plan``).

This package is the single owner of the plan format: the dataclasses, their validation,
TOML reading/writing and target matching. Anything that produces or consumes a plan
imports it from here rather than handling raw dicts.
"""

from ._match import covers_module, match_target, name_covered, specificity, target_matches
from ._model import LEVELS, PLAN_VERSION, Level, OverheadEstimate, Plan, PlanError, Target
from ._toml import dump_plan, load_plan, loads_plan

__all__ = [
    "LEVELS",
    "PLAN_VERSION",
    "Level",
    "OverheadEstimate",
    "Plan",
    "PlanError",
    "Target",
    "covers_module",
    "dump_plan",
    "load_plan",
    "loads_plan",
    "match_target",
    "name_covered",
    "specificity",
    "target_matches",
]
