"""Unit tests of the pure parts: policy documents, inputs, the key record, the summary, runner I/O."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ecr_bootstrap import action_yml, cli, inputs, policy, report, values
from ecr_bootstrap.errors import InputError, KeyPlanError, LeaseHeld
from ecr_bootstrap.github import rate_limit_wait, seal
from ecr_bootstrap.keys.reader import parse
from ecr_bootstrap.keys.record import AccessKey, marker_tag
from ecr_bootstrap.keys.rules import Retiring, plan_keys, retirable
from ecr_bootstrap.places import from_scope
from ecr_bootstrap.workflow import Workflow
from scripts import inputs_table
from tests.record_tags import holder_tag, repo_scope, valid_key, valid_value

ROOT = Path(__file__).resolve().parents[1]
ARN = "arn:aws:ecr:us-east-1:123456789012:repository/fcj-workshop-app"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


# -- policy -------------------------------------------------------------------------------------------


def test_policy_grants_exactly_the_seed_actions() -> None:
    doc = policy.ecr_access_policy(ARN)
    repo_stmt, token_stmt = doc["Statement"]
    assert sorted(repo_stmt["Action"]) == sorted(
        [
            "ecr:CompleteLayerUpload",
            "ecr:InitiateLayerUpload",
            "ecr:PutImage",
            "ecr:UploadLayerPart",
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:DescribeImages",
            "ecr:GetDownloadUrlForLayer",
        ]
    )
    assert repo_stmt["Resource"] == ARN and repo_stmt["Effect"] == "Allow"
    assert token_stmt == {
        "Sid": "GetRegistryLoginToken",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    assert len(policy.to_json(doc)) < 6144


def test_policy_comparison_ignores_order_and_sid_but_not_grants() -> None:
    doc = policy.ecr_access_policy(ARN)
    shuffled = json.loads(json.dumps(doc))
    shuffled["Statement"].reverse()
    shuffled["Statement"][1]["Action"].reverse()
    shuffled["Statement"][1].pop("Sid")
    assert policy.same_policy(doc, shuffled)
    assert policy.same_policy(doc, policy.to_json(shuffled))
    wider = json.loads(json.dumps(doc))
    wider["Statement"][0]["Action"].append("ecr:DeleteRepository")
    assert not policy.same_policy(doc, wider)
    other = policy.ecr_access_policy(ARN.replace("fcj-workshop-app", "other"))
    assert not policy.same_policy(doc, other)


# -- inputs -------------------------------------------------------------------------------------------

ENV = {"AWS_REGION": "eu-west-1", "GITHUB_REPOSITORY": "octo/app"}


def test_defaults() -> None:
    s = inputs.from_values({"github-token": "t0k"}, ENV)
    assert (s.ecr_repository, s.iam_policy, s.iam_user) == (
        "fcj-workshop-app",
        "fcj-ecr-ci-cd-policy",
        "fcj-ecr-ci-cd-user",
    )
    assert s.aws_region == "eu-west-1" and s.repositories == ("octo/app",)
    assert s.github_api_url == "https://api.github.com"
    assert s.retire_unmanaged_keys is False and s.key_wait_seconds == 120
    assert "t0k" not in repr(s)


def test_region_fallbacks() -> None:
    assert values.parse_region("", {"AWS_DEFAULT_REGION": "ap-southeast-1"}) == "ap-southeast-1"
    assert values.parse_region("us-gov-west-1", {}) == "us-gov-west-1"
    with pytest.raises(InputError, match="aws-region"):
        values.parse_region("", {})


def test_repositories_lists() -> None:
    parsed = values.parse_repositories(" a/b , c/d.e\n\nA/B\nx-y/z_1 ", {})
    assert parsed == ("a/b", "c/d.e", "x-y/z_1")
    assert values.parse_repositories("${{ github.repository }}", {"GITHUB_REPOSITORY": "o/r"}) == ("o/r",)
    for bad in ("a", "a/", "/b", "a/b/c", "-a/b", "a/..", "a b/c"):
        with pytest.raises(InputError, match="'repositories'"):
            values.parse_repositories(bad, {})
    with pytest.raises(InputError, match="'repositories'"):
        values.parse_repositories("", {})


@pytest.mark.parametrize("name", ["fcj-workshop-app", "team/app", "a.b_c__d--e", "ab", "x" * 256])
def test_valid_ecr_names(name: str) -> None:
    assert values.parse_ecr_repository(name) == name


@pytest.mark.parametrize("name", ["A", "a", "-ab", "ab-", "a//b", "a_-b", "Team/app", "x" * 257, "a b"])
def test_invalid_ecr_names(name: str) -> None:
    with pytest.raises(InputError, match="'ecr-repository'"):
        values.parse_ecr_repository(name)


def test_iam_names() -> None:
    assert values.parse_iam_name("iam-user", "ci+bot=x,y.z@w-1_2", 64)
    for bad in ("", "a" * 65, "has space", "slash/no", "ü"):
        with pytest.raises(InputError, match="'iam-user'"):
            values.parse_iam_name("iam-user", bad, 64)


def test_booleans_are_strict_and_name_the_input() -> None:
    assert values.parse_bool("x", "true") and not values.parse_bool("x", "False")
    with pytest.raises(InputError, match="'retire-unmanaged-keys'"):
        values.parse_bool("retire-unmanaged-keys", "yes")


def test_flags_override_environment_and_token_never_comes_from_argv() -> None:
    env = {**ENV, "INPUT_IAM-USER": "from-env", "GITHUB_TOKEN": "tok"}
    s = cli.from_argv(["--iam-user", "from-flag"], env)
    assert s.iam_user == "from-flag" and s.github_token == "tok"
    with pytest.raises(SystemExit):
        cli.from_argv(["--github-token", "x"], env)


def test_action_yml_declares_the_inputs_and_each_has_a_rule() -> None:
    """action.yml is the one declaration of the inputs: the action's own reader (PyYAML is no runtime
    dependency) reads every field as YAML does, and inputs.py holds one rule for each input."""
    text = (ROOT / "action.yml").read_text()
    spec = yaml.safe_load(text)
    read = action_yml.read_inputs(text)
    assert list(read) == list(spec["inputs"])
    assert {name: (d.description, d.default, d.required) for name, d in read.items()} == {
        name: (meta["description"], meta.get("default", ""), meta.get("required", False))
        for name, meta in spec["inputs"].items()
    }
    assert action_yml.inputs() == read  # the file the action finds is this one
    assert set(inputs.RULES) == set(read)
    assert spec["inputs"]["github-token"]["required"] is True
    assert set(spec["outputs"]) == set(report.outputs(report.Report()))
    assert spec["runs"] == {"using": "docker", "image": "Dockerfile"}


GOOD_INPUTS = 'inputs:\n  a:\n    description: >-\n      One\n      two.\n    default: "x"\noutputs:\n'


@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        ("      two.", "\n      two."),  # a blank line: YAML would keep a line break
        ("      two.", "        two."),  # more indented: YAML would keep a line break
        ("      two.", "      two. "),  # trailing white space
        ('    default: "x"', "    # a comment"),
        ('    default: "x"', "    default: true"),  # YAML reads a boolean, not the text
        ('    default: "x"', "    default: 120"),
        ('    default: "x"', "    default: 'x'"),
        ('    default: "x"', "    default: a: b"),
        ('    default: "x"', '    default: "a\\"b"'),
        ('    default: "x"', "    default:"),
        ('    default: "x"', "    deprecationMessage: x"),
        ('    default: "x"', '    default: "x"\n    default: "y"'),
        ('    default: "x"', '    default: "x"\n  a:\n    description: again'),
        ('    default: "x"', "    required: yes"),
        ("    description: >-\n      One\n      two.", "    description: |\n      One"),
        ("    description: >-\n      One\n      two.", "    description: >-"),
        ("    description: >-\n      One\n      two.", "    default: x"),  # no description
        ("inputs:", "inputs: {}"),
    ],
)
def test_the_action_yml_reader_refuses_what_it_may_not_read_as_yaml_does(line: str, replacement: str) -> None:
    assert action_yml.read_inputs(GOOD_INPUTS) == {"a": action_yml.Declared("a", "One two.", "x")}
    with pytest.raises(ValueError, match=r"^action\.yml"):
        action_yml.read_inputs(GOOD_INPUTS.replace(line, replacement, 1))


# -- the key record -----------------------------------------------------------------------------------


def key(key_id: str, age_days: int = 1) -> AccessKey:
    return AccessKey(key_id, NOW - timedelta(days=age_days))


def test_record_round_trip_and_tag_limits() -> None:
    scope = repo_scope("Octo-Org/" + "r" * 100)
    tags = [
        marker_tag("AKIAAAAAAAAAAAAAAAAA", "active", NOW),
        holder_tag(scope, ["AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB"]),
        {"Key": "team", "Value": "ci"},
    ]
    for tag in tags[:2]:
        assert len(tag["Key"]) <= 128 and len(tag["Value"]) <= 256
        assert valid_key(tag["Key"]) and valid_value(tag["Value"])
    rec = parse(tags)
    assert rec.holders == {scope: ("AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB")}
    assert rec.markers["AKIAAAAAAAAAAAAAAAAA"].state == "active"
    assert rec.other_tags == 1
    assert rec.holders_of("AKIABBBBBBBBBBBBBBBB") == {scope}


def test_plan_needs_a_free_slot() -> None:
    a, b = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB"
    rec = parse(
        [
            marker_tag(a, "active", NOW),
            marker_tag(b, "active", NOW),
            holder_tag("repo:o/x", [a]),
            holder_tag("repo:o/y", [b]),
        ]
    )
    # Each key held by a repository of its own. A run for o/z can free neither: refused, naming both.
    with pytest.raises(KeyPlanError, match=r"held by o/x.*held by o/y"):
        plan_keys([key(a), key(b)], rec, [from_scope("repo:o/z")], NOW, Retiring(False))
    # The run for o/x: its own target is a's only holder, so a goes first (break before make); o/y is
    # never written and keeps b.
    own = plan_keys([key(a), key(b)], rec, [from_scope("repo:o/x")], NOW, Retiring(False))
    assert own.reclaim == key(a) and own.breaks == ("repo:o/x",) and own.extra_scopes == ("repo:o/y",)
    one = plan_keys([key(a)], rec, [from_scope("repo:o/x")], NOW, Retiring(False))
    assert one.reclaim is None and one.extra_scopes == () and one.breaks == ()


def test_plan_reclaims_an_old_pending_orphan_but_not_a_young_one() -> None:
    held, orphan = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB"
    base = [marker_tag(held, "active", NOW), holder_tag("repo:o/x", [held])]
    old = parse([*base, marker_tag(orphan, "pending", NOW - timedelta(hours=2))])
    plan = plan_keys([key(held), key(orphan)], old, [from_scope("repo:o/x")], NOW, Retiring(False))
    assert plan.reclaim is not None and plan.reclaim.key_id == orphan
    young = parse([*base, marker_tag(orphan, "pending", NOW - timedelta(minutes=1))])
    with pytest.raises(LeaseHeld):
        plan_keys([key(held), key(orphan)], young, [from_scope("repo:o/x")], NOW, Retiring(False))


def test_plan_refuses_a_target_another_run_is_writing() -> None:
    old, new = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB"
    rec = parse(
        [
            marker_tag(old, "active", NOW),
            marker_tag(new, "pending", NOW),
            holder_tag("repo:o/x", [old, new]),
        ]
    )
    with pytest.raises(LeaseHeld):
        plan_keys([key(old), key(new, 0)], rec, [from_scope("repo:o/x")], NOW, Retiring(False))


def test_plan_refuses_while_another_run_writes_other_targets() -> None:
    """Otherwise two keys held by different targets would leave no slot for any later rotation."""
    new = "AKIABBBBBBBBBBBBBBBB"
    until = NOW + timedelta(minutes=10)
    rec = parse([marker_tag(new, "pending", NOW, until), holder_tag("repo:o/y", [new])])
    with pytest.raises(LeaseHeld):
        plan_keys([key(new, 0)], rec, [from_scope("repo:o/x")], NOW, Retiring(False))
    later = until + timedelta(seconds=1)  # its lease is over: a crashed run's key, no longer in flight
    assert plan_keys([key(new, 0)], rec, [from_scope("repo:o/x")], later, Retiring(False)).extra_scopes == (
        "repo:o/y",
    )


def test_plan_shares_the_new_key_with_other_holders() -> None:
    a = "AKIAAAAAAAAAAAAAAAAA"
    rec = parse([marker_tag(a, "active", NOW), holder_tag("repo:o/y", [a])])
    plan = plan_keys([key(a)], rec, [from_scope("repo:o/x")], NOW, Retiring(False))
    assert plan.extra_scopes == ("repo:o/y",)


def test_unmanaged_keys_are_neither_retired_nor_reclaimed_unless_asked() -> None:
    foreign = "AKIAFFFFFFFFFFFFFFFF"
    rec = parse([])
    assert retirable([foreign], rec, NOW, Retiring(False)) == []
    assert retirable([foreign], rec, NOW, Retiring(True)) == [foreign]
    with pytest.raises(KeyPlanError, match="not created by this action"):
        plan_keys(
            [key(foreign), key("AKIAGGGGGGGGGGGGGGGG")],
            rec,
            [from_scope("repo:o/x")],
            NOW,
            Retiring(False),
        )


# -- summary, outputs, runner I/O, GitHub helpers ------------------------------------------------------


def test_summary_table() -> None:
    r = report.Report(repository_uri="1.dkr.ecr.r.amazonaws.com/app", access_key_id="AKIAX")
    r.add("ECR repository", "app", "created", "a|b")
    r.targets.append(report.TargetResult("o/r", "written"))
    r.targets.append(report.TargetResult("o/s", "unknown", "its secret may be the older key's"))
    md = report.summary(r)
    assert "| Repository URI | `1.dkr.ecr.r.amazonaws.com/app` |" in md
    assert "| ECR repository | `app` | created | a\\|b |" in md
    assert "| `o/r` | written |  |" in md and "| `o/s` | unknown | its secret may be the older key's |" in md
    assert "CAUTION" in report.summary(r, failed="boom") and "boom" in report.summary(r, failed="boom")
    assert report.outputs(r)["access-key-id"] == "AKIAX"


def test_workflow_commands_escape_and_files(tmp_path: Path) -> None:
    out = io.StringIO()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "o"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
    }
    wf = Workflow(env, out)
    wf.mask("abc")
    wf.error("50% done\nnext", title="a:b,c")
    wf.set_outputs({"one": "1", "multi": "x\ny"})
    wf.write_summary("# hi")
    lines = out.getvalue().splitlines()
    assert lines[0] == "::add-mask::abc"
    assert lines[1] == "::error title=a%3Ab%2Cc::50%25 done%0Anext"
    text = (tmp_path / "o").read_text()
    assert text.startswith("one=1\nmulti<<ghadelimiter_") and "\nx\ny\nghadelimiter_" in text
    assert (tmp_path / "s").read_text() == "# hi\n"


def test_masked_values_are_redacted_everywhere_but_the_mask_command(tmp_path: Path) -> None:
    out = io.StringIO()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "o"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
    }
    wf = Workflow(env, out)
    wf.mask("s3cr3t/Value+x")
    wf.mask("s3cr3t")
    wf.error("GitHub said: bad value s3cr3t/Value+x")
    wf.info("prefix s3cr3t")
    wf.set_outputs({"o": "s3cr3t"})
    wf.write_summary("failed: s3cr3t/Value+x")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["::add-mask::s3cr3t/Value+x", "::add-mask::s3cr3t"]
    assert lines[2:] == ["::error::GitHub said: bad value ***", "prefix ***"]
    assert "s3cr3t" not in (tmp_path / "o").read_text() + (tmp_path / "s").read_text()


def test_rate_limit_waits() -> None:
    assert rate_limit_wait(403, {"Retry-After": "7"}, "", 0) == 7
    assert rate_limit_wait(429, {}, "", 0) == 60
    assert rate_limit_wait(403, {}, "You have exceeded a secondary rate limit", 0) == 60
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "110"}, "", 100) == 11
    assert rate_limit_wait(403, {}, "Resource not accessible by integration", 0) is None
    assert rate_limit_wait(500, {"Retry-After": "1"}, "", 0) is None


def test_seal_is_a_libsodium_sealed_box() -> None:
    import base64

    from nacl.public import PrivateKey, SealedBox

    private = PrivateKey.generate()
    public = base64.b64encode(bytes(private.public_key)).decode()
    sealed = seal(public, "s3cret")
    assert sealed != seal(public, "s3cret")  # fresh ephemeral key each time
    assert SealedBox(private).decrypt(base64.b64decode(sealed)) == b"s3cret"


def test_plan_respects_the_50_tag_limit() -> None:
    rec = parse([holder_tag(f"repo:o/r{i}", ["AKIAAAAAAAAAAAAAAAAA"]) for i in range(46)])
    assert rec.holders and len(rec.holders) == 46
    plan_keys(
        [], rec, [from_scope("repo:o/r1")], NOW, Retiring(False)
    )  # 46 + marker, intent and policy tags = 49
    with pytest.raises(KeyPlanError, match="50"):
        plan_keys([], rec, [from_scope("repo:o/new1"), from_scope("repo:o/new2")], NOW, Retiring(False))


def test_pacer_waits_for_points_to_leave_the_window() -> None:
    from ecr_bootstrap.github import Pacer

    pacer = Pacer(points=12, window=60.0)
    assert pacer.delay("PUT", 0.0) == 0.0
    pacer.spend("PUT", 0.0)  # 5
    pacer.spend("PUT", 10.0)  # 10
    assert pacer.delay("GET", 11.0) == 0.0  # 11 <= 12
    pacer.spend("GET", 11.0)  # 11
    assert pacer.delay("PUT", 12.0) == 48.0  # needs the first PUT gone: at 60
    assert pacer.delay("GET", 12.0) == 0.0
    assert pacer.delay("PUT", 60.0) == 0.0


def test_keys_held_for_90_days_are_warned_about() -> None:
    from ecr_bootstrap.report import age, key_table, old_keys

    now = NOW
    old = AccessKey("AKIAOLDOLDOLDOLDOLDO", now - timedelta(days=91))
    young = AccessKey("AKIAYOUNGYOUNGYOUNGY", now - timedelta(days=3))
    orphan = AccessKey("AKIAORPHANORPHANORPH", now - timedelta(days=200))
    record = parse([holder_tag("repo:o/x", [old.key_id]), holder_tag("repo:o/y", [young.key_id])])
    table = key_table([young, old, orphan], record, now)
    assert [k.key_id for k in table] == [orphan.key_id, old.key_id, young.key_id]  # oldest first
    assert table[1].age == "91 d" and table[1].holders == ("o/x",) and table[0].holders == ()
    warnings = old_keys(table, now)
    assert len(warnings) == 1 and old.key_id in warnings[0] and "90 days" in warnings[0]  # not the orphan
    assert [age(now - timedelta(seconds=s), now) for s in (5, 125, 7300, 90000)] == [
        "5 s",
        "2 min",
        "2 h",
        "1 d",
    ]


def test_the_readme_lists_every_input_and_output_of_action_yml() -> None:
    spec = yaml.safe_load((ROOT / "action.yml").read_text())
    readme = (ROOT / "README.md").read_text()

    def first_column(section: str) -> set[str]:
        body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        return set(re.findall(r"(?m)^\| `([a-z0-9-]+)` \|", body))

    assert first_column("Inputs") == set(spec["inputs"])
    assert first_column("Outputs and secrets") == set(spec["outputs"])


def test_the_inputs_table_is_made_from_action_yml_between_its_markers() -> None:
    declared = action_yml.read_inputs(GOOD_INPUTS.replace('"x"', '"a|b"'))
    made = inputs_table.table(declared.values())
    assert made == "| input | default | meaning |\n|---|---|---|\n| `a` | `a|b` | One two. |\n"
    readme = "# R\n\nText.\n<!-- inputs:start -->\nold\n<!-- inputs:end -->\n\nMore.\n"
    assert inputs_table.with_table(readme, made) == readme.replace("old\n", made)
    for broken in (readme.replace("<!-- inputs:end -->", ""), readme.replace("start", "end"), readme * 2):
        with pytest.raises(ValueError, match="inputs:start"):
            inputs_table.with_table(broken, made)


def test_a_stamp_after_the_writing_runs_lease_settles_nothing() -> None:
    """Issue 22, item 7: an organization secret's updated_at moves when an admin changes its selected
    repositories. A stamp later than the run could write (its lease, counted from its reference second,
    plus GITHUB_CLOCK_MARGIN) is someone else's: like a tie, it cannot tell which key the target holds."""
    from ecr_bootstrap.keys.record import Lease, RunId, holder_tags, lease_tags
    from ecr_bootstrap.keys.rules import adopt
    from ecr_bootstrap.keys.settle import GITHUB_CLOCK_MARGIN, Settled, settle, settle_record

    a, b, ref = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB", 1_790_000_000
    last = ref + 900 + GITHUB_CLOCK_MARGIN
    assert settle((a, b), ref, ref + 3, ref + 3, last) == Settled((b,))  # within the lease: the run's
    assert settle((a, b), ref, ref + 3, last, last) == Settled((b,))
    assert settle((a, b), ref, ref + 3, last + 1, last) is None  # the secret moved after the lease
    assert settle((a, b), ref, last + 1, ref - 1, last) is None  # the id moved after the lease
    assert settle((a, b), ref, ref - 5, ref - 5, last) == Settled((a,))  # never reached

    since = datetime.fromtimestamp(ref - 10, UTC)
    run = RunId("9001", 1, "deploy", "octo-org/app", "https://github.com")
    lease = Lease("made", since, since + timedelta(seconds=900), (a,), b, run, ref)
    tags = lease_tags(lease) + holder_tags(from_scope(repo_scope("octo-org/app")), (a, b))
    keys = [AccessKey(a, since - timedelta(days=9)), AccessKey(b, since)]
    record = adopt(parse(tags), keys)
    now = since + timedelta(days=1)
    scope = repo_scope("octo-org/app")
    after = settle_record(record, {scope: (ref + 5, ref + 900 + 20)}, [a, b], now, None)
    assert after.record.holders[scope] == (a, b) and scope in after.rewrite and after.unknown
    within = settle_record(record, {scope: (ref + 5, ref + 6)}, [a, b], now, None)
    assert within.record.holders[scope] == (b,) and not within.unknown


def test_the_longest_first_order_keeps_every_test() -> None:
    """tests/conftest.py's order: the longest first, each of 2 minutes or more followed by a shorter one -
    and no test dropped when fewer shorter ones were collected (a file run alone)."""
    from tests import conftest

    class Item:
        def __init__(self, minutes: float | None) -> None:
            self.minutes = minutes

        def get_closest_marker(self, name: str) -> pytest.Mark | None:
            return None if self.minutes is None else pytest.mark.slow(self.minutes).mark

    cases: list[tuple[list[float | None], list[float | None]]] = [
        ([None, 5, 2, None, 1], [5, 1, 2, None, None]),
        ([2], [2]),
        ([3, None, 5, 2], [5, None, 3, 2]),
    ]
    for given, expected in cases:
        items = [Item(m) for m in given]
        conftest.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
        assert [i.minutes for i in items] == expected
