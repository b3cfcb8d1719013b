"""Write docs/architecture.md: the local and AWS deployments and the data flow, in Mermaid.

Generated, never drawn by hand: the data flow from ``cryptodudez.definitions`` (asset groups,
jobs, sensors, schedules), the local deployment from the compose file in the Dockerfile's
header, the AWS deployment from the resources the Pulumi program registers under mocks
(``infra/pulumi/tests/run_mocked.py``, run as its own process). ``--check`` exits 1 when the
file is out of date.

Each diagram is also rendered to SVG (``docs/images/architecture/<name>.svg``) by mermaid.js
in headless Chromium, driven by Playwright (``--render``): the renderer GitHub uses for
Mermaid blocks, so the images match what the source shows there. An SVG's first line names
the sha256 of the Mermaid source it was drawn from; the test compares that with the
document's sources (layout depends on the machine's fonts, so the SVG bytes are not compared).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from cryptodudez.definitions import build_definitions
from cryptodudez.generated import write_or_check
from cryptodudez.lake.layout import QUARANTINE, RAW, VALIDATED
from cryptodudez.settings import PROJECT_DIR, Settings
from cryptodudez.storage import MODELS

OUT = PROJECT_DIR / "docs" / "architecture.md"
IMAGES = PROJECT_DIR / "docs" / "images" / "architecture"
# mermaid.js from the npm registry (npm pack; no other package of it is installable here):
# the one Mermaid renderer, pinned so that a re-render changes only when a source does.
MERMAID_VERSION = "11.17.2"
MERMAID_JS = PROJECT_DIR / ".cache" / f"mermaid-{MERMAID_VERSION}.min.js"
CHROMIUM = Path(os.environ.get("CRYPTODUDEZ_CHROMIUM", "/usr/lib/chromium/chromium"))
DOCKERFILE = PROJECT_DIR / "Dockerfile"
RUNNER = PROJECT_DIR / "infra" / "pulumi" / "tests" / "run_mocked.py"
# Where results leave the asset graph: the API reads the model layer and the warehouse
# (serving/model_store.py, serving/signal_store.py, serving/mood.py).
SERVED_BY_API = ("models", "mood")
WRITES_WAREHOUSE = ("mood",)


def _id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p) for p in parts)


def mocked_stack() -> dict[str, Any]:
    """The Pulumi program's registered resources, from a mocked run in its own process."""
    done = subprocess.run([sys.executable, str(RUNNER)],  # noqa: S603 (our own script)
                          capture_output=True, text=True,
                          check=True, timeout=300, cwd=RUNNER.parents[1])
    return json.loads(done.stdout)


# Data flow ---------------------------------------------------------------------------------

def _job_groups(defs: dg.Definitions, group_of: dict[dg.AssetKey, str]) -> dict[str, list[str]]:
    """Asset job name -> the groups of the assets it selects."""
    graph = defs.resolve_asset_graph()
    job_groups: dict[str, list[str]] = {}
    for job in defs.jobs or []:
        selection = getattr(job, "selection", None)
        if isinstance(selection, dg.AssetSelection):
            job_groups[job.name] = sorted({group_of[k] for k in selection.resolve(graph)})
    return job_groups


def data_flow(defs: dg.Definitions) -> list[str]:
    """Landing to serving: sensors and schedules start jobs, jobs materialise asset groups."""
    graph = defs.resolve_asset_graph()
    group_of = {key: graph.get(key).group_name or "default"
                for key in graph.get_all_asset_keys()}
    members: dict[str, list[str]] = {}
    for key, group in sorted(group_of.items(), key=lambda kv: kv[0].to_user_string()):
        members.setdefault(group, []).append(key.to_user_string())
    upstream: dict[str, set[str]] = {group: set() for group in members}
    for key, group in group_of.items():
        for parent in graph.get(key).parent_keys:
            if group_of[parent] != group:
                upstream[group].add(group_of[parent])
    job_groups = _job_groups(defs, group_of)

    lines = ["```mermaid", "flowchart LR",
             '  vendor[/"vendor files<br/><code>cryptodudez land</code> or S3 PUT"/]',
             f'  layer_raw[("{RAW}/<br/>versioned")]',
             "  vendor --> layer_raw"]
    for group, keys in sorted(members.items()):
        label = f"<b>{group}</b><br/>" + "<br/>".join(keys)
        if group == VALIDATED:
            label += f"<br/><i>rejected rows: {QUARANTINE}/</i>"
        lines.append(f'  group_{_id(group)}["{label}"]')
    for group in sorted(upstream):
        lines += [f"  group_{_id(up)} --> group_{_id(group)}" for up in sorted(upstream[group])]
    for sensor in sorted(defs.sensors or [], key=lambda s: s.name):
        targets = sorted(j.name for j in sensor.jobs) if sensor.has_jobs else []
        if isinstance(sensor, dg.RunStatusSensorDefinition):
            lines.append(f'  sensor_{_id(sensor.name)}{{{{"{sensor.name}<br/>'
                         '<i>after an upstream run succeeds</i>"}}')
        else:
            lines.append(f'  sensor_{_id(sensor.name)}{{{{"{sensor.name}"}}}}')
            lines.append(f"  layer_raw -. lists .-> sensor_{_id(sensor.name)}")
        lines += [f"  sensor_{_id(sensor.name)} --> job_{_id(t)}" for t in targets]
    schedules = [s for s in defs.schedules or [] if isinstance(s, dg.ScheduleDefinition)]
    for schedule in sorted(schedules, key=lambda s: s.name):
        lines.append(f'  schedule_{_id(schedule.name)}(["{schedule.name}<br/>'
                     f'{schedule.cron_schedule}"])')
        lines.append(f"  schedule_{_id(schedule.name)} --> job_{_id(schedule.job_name)}")
    for job, groups in sorted(job_groups.items()):
        lines.append(f'  job_{_id(job)}[["job: {job}"]]')
        lines += [f"  job_{_id(job)} ==> group_{_id(g)}" for g in groups]
    lines += ['  api(["prediction API<br/>GET /predict"])',
              '  warehouse[("warehouse.duckdb")]']
    lines += [f"  group_{_id(g)} --> warehouse" for g in WRITES_WAREHOUSE if g in members]
    lines += [f"  group_{_id(g)} --> api" for g in SERVED_BY_API if g in members]
    lines += ["  warehouse --> api", "```"]
    return lines


# Local deployment --------------------------------------------------------------------------

def compose_services() -> dict[str, Any]:
    """The compose file documented in the Dockerfile's header comment."""
    block: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        text = line[2:] if line.startswith("# ") else None
        if text is None:
            if block:
                break
            continue
        if text.strip() == "services:" or block:
            block.append(text)
            if text.strip().startswith("volumes: {"):
                break
    return yaml.safe_load("\n".join(block))


def local_deployment() -> list[str]:
    """One image, one container per role, two named volumes (Dockerfile)."""
    compose = compose_services()
    lines = ["```mermaid", "flowchart LR", '  user(["browser / client"])',
             "  subgraph host[docker host]"]
    for name, service in compose["services"].items():
        command = " ".join(service.get("command", []))
        lines.append(f'    svc_{_id(name)}["{name}<br/><code>cryptodudez {command}</code>"]')
    for volume in compose.get("volumes", {}):
        lines.append(f'    vol_{_id(volume)}[("volume: {volume}")]')
    lines.append("  end")
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            lines.append(f"  user -- :{port.split(':')[0]} --> svc_{_id(name)}")
        for mount in service.get("volumes", []):
            volume, path = mount.split(":")[:2]
            lines.append(f"  svc_{_id(name)} ---|{path}| vol_{_id(volume)}")
    lines.append("```")
    return lines


# AWS deployment ----------------------------------------------------------------------------

def _owners(resources: list[dict[str, Any]], node: dict[str, str]) -> dict[str, list[str]]:
    """Security group id -> the diagram nodes (ALB, services, database) it is attached to."""
    owners: dict[str, list[str]] = {}
    for r in resources:
        inputs = r["inputs"]
        groups = (inputs.get("securityGroups") or inputs.get("vpcSecurityGroupIds")
                  or (inputs.get("networkConfiguration") or {}).get("securityGroups") or [])
        if r["name"] in node:
            for group in groups:
                owners.setdefault(group, []).append(node[r["name"]])
    return owners


def _access(actions: Iterable[str]) -> str:
    if "emr-serverless:StartJobRun" in actions:
        return "start jobs"
    verbs = {a.split(":", 1)[1] for a in actions}
    writes = any(v.startswith(("Put", "Delete", "Create", "Update")) for v in verbs)
    return "read/write" if writes else "read"


class _Stack:
    """The mocked run's resources, indexed the way the diagram needs them."""

    def __init__(self, stack: dict[str, Any]) -> None:
        self.resources: list[dict[str, Any]] = stack["resources"]
        self.node: dict[str, str] = {}  # logical name -> diagram node
        self.tasks = {t["arn"]: t for t in self.of("aws:ecs/taskDefinition:TaskDefinition")}
        self.queues = {q["arn"]: q for q in self.of("aws:sqs/queue:Queue")}
        self.services = sorted(self.of("aws:ecs/service:Service"),
                               key=lambda r: r["inputs"]["name"])

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]

    def container(self, service: dict[str, Any]) -> dict[str, Any]:
        task = self.tasks[service["inputs"]["taskDefinition"]]
        [container] = json.loads(task["inputs"]["containerDefinitions"])
        return container


def _aws_nodes(s: _Stack) -> list[str]:
    [alb] = s.of("aws:lb/loadBalancer:LoadBalancer")
    s.node[alb["name"]] = "alb"
    lines = ['  user(["allowed network"])', "  subgraph vpc[VPC]",
             '    alb["Application Load Balancer<br/>:80"]',
             '    subgraph ecs["ECS Fargate, private subnets"]']
    for service in s.services:
        name = service["inputs"]["name"]
        s.node[service["name"]] = f"ecs_{_id(name)}"
        container = s.container(service)
        words = [*(container.get("entryPoint") or ["cryptodudez"]), *container["command"]]
        first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        command = " ".join(words[:first_option])
        count = int(service["inputs"]["desiredCount"])
        lines.append(f'      ecs_{_id(name)}["{name} ×{count}<br/><code>{command}</code>"]')
    lines.append("    end")
    for db in s.of("aws:rds/instance:Instance"):
        s.node[db["name"]] = "rds"
        lines.append(f'    rds[("RDS {db["inputs"]["engine"]} {db["inputs"]["engineVersion"]}'
                     '<br/>Dagster storage")]')
    lines += ["  end", '  s3[("S3 lake bucket<br/>versioned, SSE-KMS, TLS only")]']
    lines += [f'  sqs_{_id(q["name"])}[/"SQS {q["inputs"]["name"]}"/]'
              for q in s.queues.values()]
    lines += [f'  glue[("Glue database {g["inputs"]["name"]}")]'
              for g in s.of("aws:glue/catalogDatabase:CatalogDatabase")]
    lines.append('  secret[["Secrets Manager<br/>RDS master password"]]')
    lines += [f'  emr["EMR Serverless {a["inputs"]["type"]}<br/>{a["inputs"]["releaseLabel"]}"]'
              for a in s.of("aws:emrserverless/application:Application")]
    logs = s.of("aws:cloudwatch/logGroup:LogGroup")
    lines.append(f'  logs[("CloudWatch Logs<br/>{len(logs)} log groups")]')
    return lines


def _network_edges(s: _Stack) -> list[str]:
    """Ingress rules of the security groups, between the nodes they are attached to."""
    owners = _owners(s.resources, s.node)
    lines = []
    for group in s.of("aws:ec2/securityGroup:SecurityGroup"):
        targets = owners.get(group["id"], [])
        for ingress in group["inputs"].get("ingress") or []:
            port = int(ingress["fromPort"])
            lines += [f"  user -- {cidr} :{port} --> {t}"
                      for cidr in ingress.get("cidrBlocks") or [] for t in targets]
            lines += [f"  {src} -- :{port} --> {t}"
                      for source in ingress.get("securityGroups") or []
                      for src in owners.get(source, []) for t in targets]
    for notification in s.of("aws:s3/bucketNotification:BucketNotification"):
        for target in notification["inputs"].get("queues") or []:
            queue = s.queues[target["queueArn"]]
            lines.append(f'  s3 -- "{target["filterPrefix"]} created" --> '
                         f'sqs_{_id(queue["name"])}')
    for queue in s.queues.values():
        if queue["inputs"].get("redrivePolicy"):
            redrive = json.loads(queue["inputs"]["redrivePolicy"])
            dlq = s.queues[redrive["deadLetterTargetArn"]]
            lines.append(f"  sqs_{_id(queue['name'])} -. after {redrive['maxReceiveCount']} "
                         f"receives .-> sqs_{_id(dlq['name'])}")
    return lines


def _reached(s: _Stack, role_arn: str) -> dict[str, set[str]]:
    """Diagram node -> the actions the role's inline policy allows on it."""
    [bucket] = s.of("aws:s3/bucket:Bucket")
    applications = [a["arn"] for a in s.of("aws:emrserverless/application:Application")]
    [role] = [r for r in s.of("aws:iam/role:Role") if r["arn"] == role_arn]
    reached: dict[str, set[str]] = {}
    for policy in s.of("aws:iam/rolePolicy:RolePolicy"):
        if policy["inputs"]["role"] != role["id"]:
            continue
        for statement in json.loads(policy["inputs"]["policy"])["Statement"]:
            for arn in statement["Resource"]:
                target = ("s3" if arn.startswith(bucket["arn"]) else "glue" if ":glue:" in arn
                          else f"sqs_{_id(s.queues[arn]['name'])}" if arn in s.queues
                          else "emr" if arn.startswith(tuple(applications)) else None)
                if target:
                    reached.setdefault(target, set()).update(statement["Action"])
    return reached


def _access_edges(s: _Stack) -> list[str]:
    """What each service's task role (and the Spark execution role) may read or write."""
    lines = []
    principals: list[tuple[str, str, dict[str, Any] | None]] = [
        (s.node[svc["name"]], s.tasks[svc["inputs"]["taskDefinition"]]["inputs"]["taskRoleArn"],
         s.container(svc)) for svc in s.services]
    principals += [("emr", r["arn"], None) for r in s.of("aws:iam/role:Role")
                   if r["name"].startswith("spark-")]
    for principal, role_arn, container in principals:
        for target, actions in sorted(_reached(s, role_arn).items()):
            lines.append(f"  {principal} -- {_access(actions)} --> {target}")
        if container is not None:
            if container["secrets"]:
                lines.append(f"  secret -. DAGSTER_PG_PASSWORD .-> {principal}")
            lines.append(f"  {principal} -.-> logs")
    return [*lines, "  secret --- rds"]


def aws_deployment(stack: dict[str, Any]) -> list[str]:
    """Network paths (security groups) and data access (IAM) of the AWS stack."""
    indexed = _Stack(stack)
    return ["```mermaid", "flowchart LR", *_aws_nodes(indexed), *_network_edges(indexed),
            *_access_edges(indexed), "```"]


def inventory(stack: dict[str, Any]) -> list[str]:
    """A table of the registered AWS resources by type, with their logical names."""
    counts = Counter(r["type"] for r in stack["resources"] if r["type"].startswith("aws:"))
    names: dict[str, list[str]] = {}
    for r in stack["resources"]:
        names.setdefault(r["type"], []).append(r["name"])
    table = ["| resource type | count | logical names |", "|---|---|---|"]
    table += [f"| `{t}` | {n} | {', '.join(sorted(names[t]))} |"
              for t, n in sorted(counts.items())]
    return table


def render(stack: dict[str, Any] | None = None) -> str:
    """The Markdown document (``stack``: a mocked Pulumi run; run one when omitted)."""
    stack = mocked_stack() if stack is None else stack
    defs = build_definitions(Settings(lake="/nonexistent-lake"))
    components = sorted(r["type"] for r in stack["resources"]
                        if r["type"].startswith("cryptodudez:"))
    return "\n".join([
        "# Architecture",
        "",
        "Generated by `scripts/architecture.py` from `cryptodudez.definitions`, the Dockerfile "
        "and the Pulumi program in `infra/pulumi/` (run under Pulumi's mocks, no cloud "
        "account); `tests/infra/test_architecture_doc.py` fails when this file is out of date. "
        f"Each diagram is drawn to SVG by mermaid.js {MERMAID_VERSION} in headless Chromium "
        "(`--render`); the test also fails when an image was drawn from another source than "
        "the one shown below it, and `tests/ui/test_diagram_render.py` draws the sources in "
        "the browser.",
        "",
        "## Data flow: landing to serving",
        "",
        "Files land in `raw/` (versioned: a re-delivery is a new version). Sensors start jobs, "
        "jobs materialise asset groups (thick arrows), groups feed each other (thin arrows); "
        f"the API serves the `{MODELS}/` layer and the warehouse. The asset-level graph is in "
        "[asset-graph.md](asset-graph.md).",
        "",
        *_figure("data-flow", "Data flow: landing to serving", data_flow(defs)),
        "",
        "## Local deployment",
        "",
        "One image, one container per role (the compose file in the `Dockerfile` header); "
        "the webserver and the daemon load the code location in-process from "
        "`workspace.yaml` and share `DAGSTER_HOME` (SQLite) on one host.",
        "",
        *_figure("local", "Local deployment", local_deployment()),
        "",
        "## AWS deployment",
        "",
        "Arrows with a port are the only network paths the security groups open; arrows "
        "labelled read or read/write are what each service's IAM role allows (scoped to the "
        "bucket's prefixes, the Glue database and the queue). Components: "
        + ", ".join(f"`{c}`" for c in components) + ".",
        "",
        *_figure("aws", "AWS deployment", aws_deployment(stack)),
        "",
        "### Resources",
        "",
        *inventory(stack),
        "",
    ])


# Rendered images -----------------------------------------------------------------------------

def digest(source: str) -> str:
    """The sha256 of a diagram's Mermaid source (what its SVG names)."""
    return hashlib.sha256(source.encode()).hexdigest()


def _figure(name: str, title: str, fenced: list[str]) -> list[str]:
    """The rendered image, then its Mermaid source (GitHub draws that too) folded away."""
    source = "\n".join(fenced[1:-1])
    return [f"![{title}](images/architecture/{name}.svg)", "",
            f"<details><summary>Mermaid source of {name}.svg (sha256 "
            f"{digest(source)[:16]})</summary>", "", *fenced, "", "</details>"]


def sources(document: str) -> dict[str, str]:
    """Image name -> the Mermaid source the document gives for it."""
    found = re.findall(r"!\[[^\]]*\]\(images/architecture/([a-z-]+)\.svg\)\n.*?"
                       r"```mermaid\n(.*?)\n```", document, flags=re.DOTALL)
    return dict(found)


def svg_source_digest(svg: str) -> str | None:
    """The source digest an SVG written by :func:`write_images` names on its first line."""
    match = re.match(r"<!-- mermaid source sha256 ([0-9a-f]{64})", svg)
    return match[1] if match else None


def ensure_mermaid() -> Path:
    """mermaid.min.js of :data:`MERMAID_VERSION`, fetched once with ``npm pack``."""
    if MERMAID_JS.exists():
        return MERMAID_JS
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"mermaid@{MERMAID_VERSION}",  # noqa: S603, S607
                        "--pack-destination", tmp, "--silent"],
                       check=True, timeout=300, capture_output=True)
        with tarfile.open(Path(tmp) / f"mermaid-{MERMAID_VERSION}.tgz") as tar:
            member = tar.extractfile("package/dist/mermaid.min.js")
            assert member is not None
            MERMAID_JS.parent.mkdir(parents=True, exist_ok=True)
            MERMAID_JS.with_suffix(".tmp").write_bytes(member.read())
            MERMAID_JS.with_suffix(".tmp").replace(MERMAID_JS)
    return MERMAID_JS


def render_svg(browser: Any, source: str, mermaid_js: Path) -> str:
    """``source`` drawn by mermaid.js in a new page of a Playwright ``browser``, as XML."""
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><html><body></body></html>")
        page.add_script_tag(path=str(mermaid_js))
        svg: str = page.evaluate(
            """async (source) => {
                mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
                const {svg} = await mermaid.render("diagram", source);
                // as XML: the labels are HTML (<br>), which a standalone .svg must close
                document.body.innerHTML = svg;
                return new XMLSerializer().serializeToString(document.querySelector("svg"));
            }""", source)
    finally:
        page.close()
    return svg


def write_images(document: str) -> list[Path]:
    """Render each diagram of ``document`` to its SVG (headless Chromium)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only to render

    mermaid_js = ensure_mermaid()
    written = []
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            for name, source in sources(document).items():
                svg = render_svg(browser, source, mermaid_js)
                path = IMAGES / f"{name}.svg"
                path.write_text(f"<!-- mermaid source sha256 {digest(source)}; drawn by "
                                f"mermaid {MERMAID_VERSION} for scripts/architecture.py "
                                f"-->\n{svg}\n")
                written.append(path)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) docs/architecture.md; ``--render`` its images."""
    args = sys.argv[1:] if argv is None else argv
    document = render()
    if "--render" in args:
        for path in write_images(document):
            sys.stdout.write(f"wrote {path}\n")
        args = [a for a in args if a != "--render"]
    return write_or_check(OUT, lambda: document, description=__doc__ or "",
                          command="python scripts/architecture.py --render", argv=args)


if __name__ == "__main__":
    raise SystemExit(main())
