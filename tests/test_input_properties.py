"""Property-based: any value of any input either validates or is refused with an error naming the input;
never a traceback, and a refused input changes nothing anywhere."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecr_bootstrap import inputs
from ecr_bootstrap.errors import InputError
from tests.stand_ins.harness import Stack

NAMES = list(inputs.RULES)
ENV = {"AWS_REGION": "us-east-1", "GITHUB_REPOSITORY": "octo/app"}
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(NAMES), value=TEXT)
def test_every_value_validates_or_names_its_input(name: str, value: str) -> None:
    values = {"github-token": "tok", name: value}
    try:
        s = inputs.from_values(values, ENV)
    except InputError as exc:
        names = {name, "lease-seconds"} if name == "key-wait-seconds" else {name}
        assert exc.input_name in names
        assert f"'{exc.input_name}'" in str(exc)
        return
    assert s.repositories and s.iam_user and s.ecr_repository


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from([n for n in NAMES if n != "github-token"]), value=TEXT)
def test_refused_values_change_nothing(stack: Stack, name: str, value: str) -> None:
    try:
        inputs.from_values({"github-token": "tok", name: value}, ENV)
    except InputError:
        pass
    else:
        return  # a valid value: covered by the scenario tests
    stack.aws.log.clear()
    stack.github.reset_log()
    if "\x00" in value:
        return  # an environment variable cannot carry NUL: the runner could not pass it either
    result = stack.run({"github-token": stack.github.add_token(), name: value}, env=ENV)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert any(f"'{name}'" in e or "'lease-seconds'" in e for e in result.errors()), result.stdout
    assert stack.aws.log == [] and stack.github.log == []
