"""Reading EXPLAIN (format json) plans."""

from __future__ import annotations


def table_scans(plan: object) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.append((plan["Node Type"], plan["Relation Name"]))
        for value in plan.values():
            found.extend(table_scans(value))
    elif isinstance(plan, list):
        for item in plan:
            found.extend(table_scans(item))
    return found


def index_names(plan: object) -> set[str]:
    """Every index the plan reads (index, index-only and bitmap index scans)."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(str(plan["Index Name"]))
        for value in plan.values():
            found |= index_names(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= index_names(item)
    return found
