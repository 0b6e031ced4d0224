"""The Jenkinsfile's decisions, read from its structure rather than by substrings: deploy and
smoke test run only on the main branch, and the gate's if/else maps each outcome to the
right build result. Whitespace, line breaks and comments do not matter; moving a call into
another branch or block does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = ROOT / "Jenkinsfile"


def strip_comments(text: str) -> str:
    """Groovy source without // and /* */ comments (string literals are kept as they are)."""
    out, i, quote = [], 0, ""
    while i < len(text):
        char = text[i]
        if quote:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1:i + 2])
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            out.append(char)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def matching(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket that closes the one at `start`, skipping string literals."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced {opening}{closing} from offset {start}")


def block(text: str, header: str, start: int = 0) -> tuple[int, str]:
    """(offset, body) of the first `{ ... }` block after the regex `header`."""
    found = re.compile(header).search(text, start)
    if found is None:
        raise AssertionError(f"no block {header!r}")
    opening = text.index("{", found.end())
    assert not text[found.end():opening].strip(), f"{header!r} is not followed by a block"
    return opening, text[opening + 1:matching(text, opening, "{", "}")]


def stage(name: str) -> str:
    """The body of `stage('name') { ... }`."""
    source = strip_comments(JENKINSFILE.read_text())
    return block(source, rf"stage\s*\(\s*['\"]{re.escape(name)}['\"]\s*\)\s*")[1]


def enclosing_keywords(text: str, position: int) -> list[str]:
    """The names of the blocks (`allOf`, `not`, ...) that enclose `position`, outermost first."""
    keywords, depth_stack = [], []
    for match in re.finditer(r"(\w+)\s*\{|\}", text[:position]):
        if match.group(0) == "}":
            depth_stack.pop()
        else:
            depth_stack.append(match.group(1))
    keywords.extend(depth_stack)
    return keywords


@pytest.mark.parametrize("name", ["deploy", "smoke test"])
def test_deploying_stages_run_only_on_the_main_branch(name: str) -> None:
    _, when = block(stage(name), r"\bwhen\s*")
    calls = list(re.finditer(r"\bbranch\s*\(?\s*['\"]([^'\"]+)['\"]\s*\)?", when))
    assert [call.group(1) for call in calls] == ["main"], f"{name}: branch conditions {calls}"
    # Inside `when` directly or an allOf: never under not/anyOf, which would loosen it.
    assert set(enclosing_keywords(when, calls[0].start())) <= {"allOf"}, name
    assert "anyOf" not in when and not re.search(r"\bnot\s*\{", when), name


@dataclass(frozen=True)
class Branch:
    """One arm of an if / else if / else chain: its condition (None for else) and body."""

    condition: str | None
    body: str


def if_chain(text: str) -> list[Branch]:
    """The arms of the first `if (...) {...} else if (...) {...} else {...}` in `text`."""
    found = re.search(r"\bif\s*\(", text)
    assert found, "no if statement"
    arms, i = [], found.end() - 1
    while True:
        close = matching(text, i, "(", ")")
        condition = " ".join(text[i + 1:close].split())
        opening = text.index("{", close)
        end = matching(text, opening, "{", "}")
        arms.append(Branch(condition, text[opening + 1:end]))
        rest = text[end + 1:]
        nxt = re.match(r"\s*else\s*if\s*\(", rest)
        if nxt:
            i = end + 1 + nxt.end() - 1
            continue
        last = re.match(r"\s*else\s*\{", rest)
        if last:
            opening = end + 1 + last.end() - 1
            arms.append(Branch(None, text[opening + 1:matching(text, opening, "{", "}")]))
        return arms


def test_the_gate_maps_each_outcome_to_its_build_result() -> None:
    body = stage("gate")
    assert re.search(r"\bint\s+status\s*=", body), "the gate keeps the make status"
    arms = if_chain(body)
    assert len(arms) == 3 and arms[-1].condition is None, arms
    success, kept, failed = arms
    assert re.fullmatch(r"status\s*==\s*0", success.condition), success
    assert re.fullmatch(r"env\.GATE_DECISION\s*==\s*['\"]champion_kept['\"]", kept.condition)
    calls = {arm: set(re.findall(r"\b(unstable|error|echo)\s*[('\"]", arm.body))
             for arm in (success, kept, failed)}
    assert calls[success] == {"echo"}, "status 0: the build stays green"
    assert calls[kept] == {"unstable"}, "champion kept: UNSTABLE, not a failure"
    assert calls[failed] == {"error"}, "anything else fails the build"


def test_the_decision_is_read_from_the_gate_report() -> None:
    body = stage("gate")
    assert re.search(r"env\.GATE_DECISION\s*=\s*fileExists\(\s*['\"]reports/gate\.json['\"]",
                     body)
    assert re.search(r"readJSON\(\s*file:\s*['\"]reports/gate\.json['\"]\s*\)\.decision", body)


@pytest.mark.parametrize(("mutation", "test"), [
    (lambda t: t.replace("branch 'main'", "branch 'develop'"),
     lambda: test_deploying_stages_run_only_on_the_main_branch("deploy")),
    (lambda t: t.replace("echo \"gate: ${env.GATE_DECISION}\"",
                         "unstable('champion kept: the production model stays')"),
     test_the_gate_maps_each_outcome_to_its_build_result),
], ids=["other-branch", "swapped-arm"])
def test_the_checks_fail_on_a_broken_jenkinsfile(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mutation: Any, test: Any) -> None:
    broken = tmp_path / "Jenkinsfile"
    original = JENKINSFILE.read_text()
    broken.write_text(mutation(original))
    assert broken.read_text() != original, "the mutation no longer applies"
    monkeypatch.setattr(f"{__name__}.JENKINSFILE", broken)
    with pytest.raises(AssertionError):
        test()
