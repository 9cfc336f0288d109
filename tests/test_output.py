"""Output hygiene: text from outside (IAM tags, GitHub answers, error texts) can neither start a workflow
command nor break the step summary's Markdown, and a run outside GitHub Actions prints no workflow command
and no secret at all."""

from __future__ import annotations

import html
import io
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from ecr_bootstrap import report
from ecr_bootstrap.workflow import Workflow
from tests.stand_ins.checks import REPO, held_pair, setup
from tests.stand_ins.harness import ROOT, Stack, action_defaults

# What a holder name decoded from an IAM tag, a GitHub answer or an error text could hold.
NASTY = (
    "nobody/x\n::set-output name=role-arn::evil",
    "::stop-commands::tok",
    " \t::add-mask::x",
    "a\r::error::b",
    "a\r\n::warning title=t::c",
    "50%0A::notice::d",  # a literal %0A must stay literal, not turn into a line break
    "x ##[set-output name=role-arn;]evil",
    "##[error]y",
    "p\u2028::group::q",
    "\x85::endgroup::",
    "\x1c  ::debug::z",
)
SECRET = "s3cr3t/Value+x0123456789abcdefABCDEF+/xyz"
ACTIONS_COMMANDS = {"add-mask", "error", "warning", "notice", "group", "endgroup"}


def runner_command(line: str) -> tuple[str, dict[str, str], str] | None:
    """The command the runner would find in a line, parsed as actions/runner's ActionCommand does:
    `::name props::data` after leading white space, or the legacy `##[name props]data` anywhere in the
    line. Every name counts (stop-commands can register any name), so this finds more than the runner."""
    trimmed = line.lstrip()  # Python's white space includes .NET's (TrimStart)
    if trimmed.startswith("::") and (end := trimmed.find("::", 2)) >= 0:
        name, _, props = trimmed[2:end].partition(" ")
        properties = {}
        for prop in filter(None, props.split(",")):
            key, _, value = prop.partition("=")
            properties[key] = unescape(value, property_=True)
        return name, properties, unescape(trimmed[end + 2 :])
    start = line.find("##[")
    if start >= 0 and (end := line.find("]", start)) >= 0 and line[start + 3 : end]:
        return line[start + 3 : end].split(" ", 1)[0], {}, line[end + 1 :]
    return None


def unescape(text: str, *, property_: bool = False) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if property_ else [])
    for escaped, plain in [*pairs, ("%25", "%")]:
        text = text.replace(escaped, plain)
    return text


def lines_of(*streams: io.StringIO) -> list[str]:
    # Python's splitlines splits on more than the runner does (\x85, \u2028, ...): a stricter reader.
    return [line for s in streams for line in s.getvalue().splitlines()]


def exercise(wf: Workflow, texts: tuple[str, ...]) -> None:
    """Everything the action prints, each with text from outside."""
    for text in texts:
        wf.info(text)
        wf.notice(text, title=text)
        wf.warning(text, title=text)
        wf.error(text, title=text)
        with wf.group(text):
            wf.info("inside")
    wf.set_outputs({"role-arn": texts[0], "holder": texts[1]})
    wf.write_summary("\n".join(texts))


def test_in_actions_no_text_starts_a_command_and_annotations_decode_to_the_text() -> None:
    out, err = io.StringIO(), io.StringIO()
    wf = Workflow({"GITHUB_ACTIONS": "true"}, out, err)
    wf.mask(SECRET)
    exercise(wf, NASTY)

    assert err.getvalue() == ""
    lines = lines_of(out)
    commands = [(line, runner_command(line)) for line in lines if runner_command(line)]
    assert commands[0][1] == ("add-mask", {}, SECRET)
    names = [c[0] for _, c in commands if c]
    # Exactly the commands the action wrote: a mask, then per text 3 annotations and a group.
    assert names == ["add-mask"] + ["notice", "warning", "error", "group", "endgroup"] * len(NASTY)
    for line, _ in commands:
        assert re.match(r"::[a-z-]+( title=[^:]*)?::", line), line
    annotations = [c for _, c in commands if c and c[0] in ("notice", "warning", "error")]
    # The runner gets the text back, but for the rarer line breaks: left percent-encoded as the UTF-8 bytes.
    expected = [re.sub("[\x1c\x85\u2028]", lambda m: quote(m.group(0)), text) for text in NASTY]
    assert [(data, props["title"]) for _, props, data in annotations] == [
        (text, text) for text in expected for _ in range(3)
    ]
    groups = [c[2] for _, c in commands if c and c[0] == "group"]
    assert groups == expected
    plain = [line for line in lines if not runner_command(line)]
    assert not [line for line in plain if line.lstrip().startswith("::") or "##[" in line]
    assert "output role-arn=nobody/x%0A::set-output name=role-arn::evil" in plain
    assert "%3A%3Astop-commands::tok" in plain
    assert "50%250A::notice::d" in plain
    assert all(SECRET not in line for line in lines[1:])


@pytest.mark.parametrize("actions", ["", "false", "TRUE", "1", " true"])
def test_outside_actions_no_workflow_command_and_no_secret(actions: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    wf = Workflow({"GITHUB_ACTIONS": actions} if actions else {}, out, err)
    wf.mask(SECRET)
    exercise(wf, (*NASTY, f"GitHub said: bad value {SECRET}"))
    wf.set_outputs({"secret": SECRET})

    lines = lines_of(out, err)
    assert not [line for line in lines if line.lstrip().startswith("::") or runner_command(line)]
    assert not [line for line in lines if SECRET in line]
    errors = err.getvalue().splitlines()
    assert errors and all(line.startswith(("error: ", "warning: ")) for line in errors)
    assert "error: GitHub said: bad value ***" in errors
    assert "warning: ::stop-commands::tok" in errors  # not at the start of the line
    stdout = out.getvalue().splitlines()
    assert "== nobody/x%0A::set-output name=role-arn::evil" in stdout  # a group is a heading line
    assert "role-arn=nobody/x%0A::set-output name=role-arn::evil" in stdout  # outputs: name=value
    assert "secret=***" in stdout
    assert "%3A%3Astop-commands::tok" in stdout  # info and notices are plain lines


def test_outside_actions_the_summary_is_plain_text(tmp_path: Path) -> None:
    r = report.Report(repository_uri="1.dkr.ecr.r.amazonaws.com/app", access_key_id="AKIAX")
    r.add("ECR repository", "app", "created", "a|b")
    out = io.StringIO()
    wf = Workflow({}, out, io.StringIO())
    wf.write_summary(report.summary(r, failed="boom"), report.summary_text(r, failed="boom"))
    shown = out.getvalue()
    assert "Failed: boom" in shown and "[!" not in shown and "|" not in shown.replace("a|b", "")
    assert re.search(r"(?m)^ECR repository +app +created +a\|b$", shown), shown

    out = io.StringIO()
    Workflow({}, out, io.StringIO()).write_summary(report.summary(r, failed="boom"))  # no text given
    assert "[!" not in out.getvalue() and "Caution:" in out.getvalue()

    path = tmp_path / "summary"  # a summary file outside Actions still gets the Markdown
    Workflow({"GITHUB_STEP_SUMMARY": str(path)}, io.StringIO()).write_summary(report.summary(r))
    assert "| ECR repository | `app` | created | a\\|b |" in path.read_text()


def test_in_actions_the_summary_without_its_file_is_printed_line_by_line() -> None:
    out = io.StringIO()
    Workflow({"GITHUB_ACTIONS": "true"}, out).write_summary("## t\n\n> [!CAUTION]\n> ::error::x\n")
    assert out.getvalue().splitlines() == ["## t", "", "> [!CAUTION]", "> ::error::x"]


# -- the step summary's Markdown ---------------------------------------------------------------------------

HOSTILE = "a|b`c\rd\ne[f](g)<h>i\\|j&amp;\u2028k"


def cells(row: str) -> list[str]:
    """A table row's cells as GitHub's Markdown (cmark-gfm) splits them: a backslash and any ASCII
    punctuation after it are one escaped pair, any other pipe ends a cell."""
    found, cell, i = [], "", 0
    while i < len(row):
        if row[i] == "\\" and i + 1 < len(row) and not row[i + 1].isalnum() and row[i + 1].isascii():
            cell, i = cell + row[i : i + 2], i + 2
        elif row[i] == "|":
            found.append(cell)
            cell, i = "", i + 1
        else:
            cell, i = cell + row[i], i + 1
    return [c.strip() for c in found[1:]]  # a row starts with a pipe


def shown(cell: str) -> str:
    """What a cell displays, for the escapes the summary uses (entities, `\\|`, code spans, <code>)."""
    cell = cell.replace("\\|", "|")
    if cell.startswith("`") and cell.endswith("`") and "`" not in cell[1:-1]:
        return cell[1:-1]
    code = re.fullmatch(r"<code>(.*)</code>", cell)
    return html.unescape(code.group(1) if code else cell)


def hostile_report(value: str) -> report.Report:
    r = report.Report(repository_uri=value, policy_arn=value, user_arn=value, role_arn=value)
    r.add("ECR repository", value, "created", value)
    r.targets.append(report.TargetResult(value, "written", value))
    r.targets.append(report.TargetResult(value, "unknown", value))
    r.keys.append(report.KeyInfo(value, datetime(2025, 1, 2, tzinfo=UTC), value, (value, value)))
    return r


@pytest.mark.parametrize(
    "value", [HOSTILE, "|", "`", "``x`", "\\", "x\\", "\r\n", "[x]: y", "<script>", "&#124;", "`a|b`"]
)
def test_summary_values_stay_in_their_cell_and_show_as_written(value: str) -> None:
    md = report.summary(hostile_report(value), failed=value)
    lines = md.splitlines()
    flat = re.sub("\r\n|[\r\n\u2028]", " ", value)
    assert len(lines) == len(report.summary(hostile_report("plain"), failed="plain").splitlines())
    rows = [line for line in lines if line.startswith("|") and not line.startswith("|---")]
    widths = {2: 0, 3: 0, 4: 0}
    for row in rows:
        widths[len(cells(row))] += 1
    # Facts: a header and 4 rows; targets: a header and 2; changes and keys: a header and 1 each.
    assert widths == {2: 5, 3: 3, 4: 4}
    change = cells(next(line for line in rows if line.startswith("| ECR repository ")))
    flat = flat.strip(" ")  # GitHub trims a cell
    assert [shown(c).strip(" ") for c in change] == ["ECR repository", flat, "created", flat]
    key = cells(rows[-1])
    assert shown(key[0]).strip(" ") == flat and shown(key[2]).strip(" ") == flat
    assert key[3].count("<code>") + key[3].count("`") >= 2  # each holder shown as code
    caution = lines[lines.index("> [!CAUTION]") + 1]
    assert html.unescape(caution[2:].replace("\\|", "|")).strip(" ") == flat
    for line in lines:  # no Markdown of the value's own: no raw HTML, link or image brackets
        if line.startswith(("| ", "> ")) and line != "> [!CAUTION]":
            bare = re.sub(r"</?code>", "", line.removeprefix("> "))
            assert not set("<>[]") & set(bare), line


def test_summary_keeps_the_action_own_markdown() -> None:
    r = report.Report(repository_uri="1.dkr.ecr.r.amazonaws.com/app", dry_run=True, snippet="a: `x`\n```\nb")
    r.add("ECR repository", "app", "would create", "scan on push")
    md = report.summary(r, failed="")
    assert md.startswith("## ECR delivery bootstrap - plan (dry run)\n")
    assert "> [!NOTE]\n> Dry run:" in md
    assert "| ECR repository | `app` | would create | scan on push |" in md
    assert "````yaml\na: `x`\n```\nb\n````\n" in md  # a fence longer than the snippet's own


def test_summary_text_aligns_columns_one_row_per_line() -> None:
    text = report.summary_text(hostile_report(HOSTILE), failed=HOSTILE)
    assert "[!" not in text and "|---" not in text
    flat = HOSTILE.replace("\r", " ").replace("\n", " ").replace("\u2028", " ")
    assert f"Failed: {flat}" in text.splitlines()
    rows = [line for line in text.splitlines() if line.startswith("ECR repository ")]
    assert rows == [f"ECR repository  {flat}  created  {flat}"]


# -- the action as a process -------------------------------------------------------------------------------


def run_entrypoint(env: dict[str, str], *args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-c", code] if code else [sys.executable, str(ROOT / "entrypoint.py"), *args]
    return subprocess.run(command, env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_tokens_are_masked_first() -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "INPUT_GITHUB-TOKEN": "ghp_abcdefabcdef0123456789",
        "INPUT_ACTIONS-TOKEN": "ghs_zyxw9876",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "GITHUB_REPOSITORY": "o/r",
    }
    no_run = "import ecr_bootstrap.apply as b, ecr_bootstrap.cli as c; b.run = lambda *a: None"
    result = run_entrypoint(env, code=no_run + "; raise SystemExit(c.main())")  # inputs read, nothing run
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == [
        "::add-mask::ghp_abcdefabcdef0123456789",
        "::add-mask::ghs_zyxw9876",
    ]


def test_a_local_failure_is_a_plain_error_with_its_fix_on_stderr() -> None:
    result = run_entrypoint({"AWS_REGION": "us-east-1", "GITHUB_REPOSITORY": "o/r"})
    assert result.returncode == 1
    assert not [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("::")]
    assert result.stderr.startswith("error: Input 'github-token': no token given. Fix: Pass github-token")
    assert "Failed: Input 'github-token'" in result.stdout and "[!" not in result.stdout

    denied = run_entrypoint({}, "permissions", "--auth", "bogus")
    assert denied.returncode == 1 and denied.stdout == ""
    assert denied.stderr.startswith("error: Input 'auth':")
    in_actions = run_entrypoint({"GITHUB_ACTIONS": "true"}, "permissions", "--auth", "bogus")
    assert in_actions.stdout.startswith("::error title=Invalid input::Input 'auth':"), in_actions.stdout


def test_a_local_run_prints_no_command_and_no_secret(stack: Stack, tmp_path: Path) -> None:
    """A run from a laptop: no GITHUB_ACTIONS, GITHUB_OUTPUT or GITHUB_STEP_SUMMARY."""
    token = setup(stack)
    env = stack.env(tmp_path)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        del env[name]
    env["GITHUB_ACTIONS"] = ""
    for name, value in {**action_defaults(REPO), "github-token": token}.items():
        env["INPUT_" + name.upper()] = value
    result = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if line.lstrip().startswith("::") or runner_command(line)]
    assert not [line for line in lines if re.search(r"[A-Za-z0-9/+]{40}", line)]
    key_id, secret = held_pair(stack, REPO)
    assert secret not in result.stdout + result.stderr and token not in result.stdout + result.stderr
    stdout = result.stdout.splitlines()
    assert f"access-key-id={key_id}" in stdout  # the outputs, as name=value lines
    assert "ECR delivery bootstrap" in stdout and not [
        line for line in stdout if line.startswith(("> ", "| "))
    ]
    assert re.search(r"(?m)^ECR repository +fcj-workshop-app +created", result.stdout), result.stdout
