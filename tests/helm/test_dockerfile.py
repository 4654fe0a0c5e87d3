"""The Dockerfile, checked by structure: no container engine runs here, so it is not built in tests."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO
from tests.helm.chart import CHART

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|[a-z0-9.+-]+-dev)\b")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped, as docker parses them."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def _stages() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, re.IGNORECASE)
            assert m, f"every stage is named: FROM {args}"
            base = re.sub(r"\$\{(\w+)\}", lambda v: global_args[v.group(1)], m.group(1))
            stages.append(Stage(m.group(2), base))
        elif not stages and keyword == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def _chain(stages: list[Stage], name: str) -> list[Stage]:
    """A stage and the stages it is built FROM, innermost last."""
    by_name = {s.name: s for s in stages}
    chain = [by_name[name]]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return chain


def _effective(stages: list[Stage], name: str, keyword: str) -> str:
    for stage in _chain(stages, name):
        found = stage.all(keyword)
        if found:
            return found[-1]
    raise AssertionError(f"{name} has no {keyword}")


def test_multi_stage_with_a_builder_and_two_shipped_targets() -> None:
    _, stages = _stages()
    assert [s.name for s in stages] == ["builder", "base", "enrich", "runtime"]
    # The last stage is what `docker build .` produces: the plain runtime, without Chromium.
    assert stages[-1].name == "runtime" and stages[-1].base == "base"
    assert stages[2].base == "base"


def test_base_images_are_pinned_by_tag_never_latest() -> None:
    _, stages = _stages()
    names = {s.name for s in stages}
    external = [s.base for s in stages if s.base not in names]
    assert external
    for image in external:
        repo, _, tag = image.split("@")[0].rpartition(":")
        assert repo and tag and tag != "latest", image
        assert re.fullmatch(r"3\.11[\w.-]*-slim-bookworm", tag), image


def test_shipped_targets_run_as_the_numeric_non_root_user_the_chart_expects() -> None:
    _, stages = _stages()
    uid = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]["runAsUser"]
    for target in ("runtime", "enrich"):
        user = _effective(stages, target, "USER")
        assert re.fullmatch(r"\d+(:\d+)?", user), f"{target}: USER {user} is not numeric"
        assert int(user.split(":")[0]) == uid != 0


def test_build_tools_stay_in_the_builder() -> None:
    _, stages = _stages()
    for stage in stages:
        installs = " ".join(r for r in stage.all("RUN") if "apt-get install" in r)
        if stage.name == "builder":
            assert BUILD_TOOLS.search(installs)
        else:
            assert not BUILD_TOOLS.search(installs), stage.name
            # Shipped stages take the finished virtualenv from the builder, never the source tree.
            for copy in stage.all("COPY"):
                assert copy.startswith("--from=builder "), f"{stage.name}: COPY {copy}"


def test_chromium_only_in_the_enrich_target() -> None:
    _, stages = _stages()
    for stage in stages:
        mentions = any("chromium" in args.lower() for kw, args in stage.instructions if kw in {"RUN", "COPY"})
        assert mentions == (stage.name == "enrich"), stage.name


def test_chromium_pin_matches_bootstrap() -> None:
    _, stages = _stages()
    (arg,) = [a for a in next(s for s in stages if s.name == "enrich").all("ARG") if a.startswith("CHROMIUM_VERSION=")]
    bootstrap = re.search(r"^CHROMIUM_VERSION=(\S+)$", (REPO / "scripts" / "bootstrap").read_text(), re.M)
    assert bootstrap and arg.split("=", 1)[1] == bootstrap.group(1)


def test_the_command_picks_the_service() -> None:
    _, stages = _stages()
    assert json.loads(_effective(stages, "runtime", "ENTRYPOINT")) == ["alertline"]
    assert json.loads(_effective(stages, "enrich", "ENTRYPOINT"))[-1] == "alertline"


def test_builder_installs_the_locked_versions() -> None:
    _, stages = _stages()
    builder = stages[0]
    assert any("requirements.lock" in c for c in builder.all("COPY"))
    assert any("--constraint requirements.lock" in r and "pip check" in r for r in builder.all("RUN"))


def test_every_runtime_dependency_is_pinned_by_the_lock() -> None:
    # The image installs `.` constrained by the lock: a runtime dependency missing from the lock
    # would float. Walk the installed metadata from pyproject's dependencies and check the closure.
    locked = {
        canonicalize_name(line.split("==")[0])
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    todo = list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    seen: set[str] = set()
    while todo:
        req = Requirement(todo.pop())
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for dep in metadata.requires(name) or []:
            r = Requirement(dep)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(dep)
    assert seen - locked == set()
    assert len(seen) > 20
