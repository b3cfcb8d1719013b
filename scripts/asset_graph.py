"""Write docs/asset-graph.md: the asset graph as a Mermaid diagram.

Generated from the definitions, never drawn by hand; ``--check`` exits 1 when the file is out
of date.
"""

import dagster as dg

from cryptodudez.definitions import build_definitions
from cryptodudez.generated import write_or_check
from cryptodudez.settings import PROJECT_DIR, Settings

OUT = PROJECT_DIR / "docs" / "asset-graph.md"


def _node_id(key: dg.AssetKey) -> str:
    return "_".join(key.path)


def _partitions(spec_partitions: dg.PartitionsDefinition | None) -> str:
    if spec_partitions is None:
        return "unpartitioned"
    if isinstance(spec_partitions, dg.DynamicPartitionsDefinition):
        return f"dynamic: {spec_partitions.name}"
    if isinstance(spec_partitions, dg.TimeWindowPartitionsDefinition):
        return f"time: {spec_partitions.cron_schedule} from {spec_partitions.start:%Y}"
    return type(spec_partitions).__name__


def _check_scope(partitions: dg.PartitionsDefinition | None) -> str:
    """Whether a check keeps a verdict per partition or one for the whole asset."""
    return "whole asset" if partitions is None else f"partition ({_partitions(partitions)})"


def render() -> str:
    """The Markdown document with the Mermaid graph and a table of assets and checks."""
    defs = build_definitions(Settings(lake="/nonexistent-lake"))
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    groups: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        groups.setdefault(graph.get(key).group_name or "default", []).append(key)
    lines = ["```mermaid", "flowchart LR"]
    for group, members in sorted(groups.items()):
        lines.append(f"  subgraph {group}")
        for key in members:
            node = graph.get(key)
            label = f"{key.to_user_string()}<br/><i>{_partitions(node.partitions_def)}</i>"
            lines.append(f'    {_node_id(key)}["{label}"]')
        lines.append("  end")
    for key in keys:
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            lines.append(f"  {_node_id(parent)} --> {_node_id(key)}")
    lines.append("```")
    checks = sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(),
                                                           k.name))
    table = ["| asset | check | evaluated per |", "|---|---|---|"]
    table += [f"| `{c.asset_key.to_user_string()}` | `{c.name}` | "
              f"{_check_scope(graph.get_check_spec(c).partitions_def)} |" for c in checks]
    sensors = ", ".join(f"`{s.name}`" for s in defs.sensors or [])
    jobs = ", ".join(f"`{j.name}`" for j in defs.jobs or [])
    return "\n".join([
        "# Asset graph",
        "",
        "Generated from `cryptodudez.definitions` by `scripts/asset_graph.py`; a test fails "
        "when this file is out of date.",
        "",
        *lines,
        "",
        f"Jobs: {jobs}. Sensors: {sensors}.",
        "",
        "## Asset checks",
        "",
        *table,
        "",
    ])


def main() -> int:
    """Write (or with ``--check`` verify) docs/asset-graph.md."""
    return write_or_check(OUT, render, description=__doc__ or "",
                          command="python scripts/asset_graph.py")


if __name__ == "__main__":
    raise SystemExit(main())
