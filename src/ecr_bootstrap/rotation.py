"""The key rotation transaction: create -> record -> prove -> write -> commit record -> retire.

The secret access key is shown once, so safety follows from two rules: a target must always hold an id and
secret of one live key, and a key that any target may hold is never deleted.

Per target, ECR_REPOSITORY_URI is written first (it is not a credential; nothing to undo), then
AWS_ACCESS_KEY_ID, then AWS_SECRET_ACCESS_KEY. The id goes before the secret because an id can be restored
(IAM lists it) and a secret cannot: if the secret write fails, writing the old id back leaves the old pair
whole. Before any target changes, its record on the user says "old or new key", so a crash at any point
leaves both keys alive until a later run knows which one the target holds.

A new user is created with the intent and the targets' entries ("the next key") as CreateUser's own tags:
no other run can write its record before this run's key is marked, so that run needs neither a separate
intent write nor the pending write after CreateAccessKey.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .aws import AwsClients, iam, is_code, sts
from .errors import AwsError, BootstrapError, GitHubError, RotationError
from .github import GitHub
from .inputs import SecretNames
from .places import Place
from .records import (
    NEXT,
    AccessKey,
    KeyPlan,
    Record,
    holder_tag,
    holder_tag_key,
    intent_done,
    intent_tag,
    marker_key,
    marker_tag,
    parse,
    policy_tag,
    retirable,
)
from .report import Report, TargetResult
from .workflow import Workflow

# A pair is not started with less of the lease left than this (two writes at the client's timeout).
LEASE_MARGIN = 35.0


@dataclass
class Target:
    place: Place
    previous: tuple[str, ...]  # key ids the record says this target may hold now
    requested: bool = True

    @property
    def scope(self) -> str:
        return self.place.scope

    @property
    def repository(self) -> str:  # how messages name it
        return self.place.label


@dataclass
class Rotation:
    aws: AwsClients
    github: GitHub
    workflow: Workflow
    report: Report
    user: iam.User | None  # None until _ensure_user has it (a new user is created with the intent)
    keys: list[AccessKey]
    record: Record
    plan: KeyPlan
    targets: list[Target]
    repository_uri: str
    retire_unmanaged: bool
    key_wait_seconds: float
    lease_seconds: float
    now: Callable[[], datetime]
    names: SecretNames = field(default_factory=SecretNames)
    policy_version: tuple[str, str] | None = None  # (name, default version), remembered in the record
    created_user: bool = False  # this run made the user with its intent: no other run can race it
    new_key: str = ""
    created: datetime | None = None
    lease_end: datetime | None = None
    _secret: str = field(default="", repr=False)

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def _margin(self) -> float:
        return min(LEASE_MARGIN, self.lease_seconds / 4)

    @property
    def _iam_user(self) -> iam.User:
        if self.user is None:  # _ensure_user sets it before run()
            raise RuntimeError("the IAM user is not known yet")
        return self.user

    @property
    def _user(self) -> str:
        return self._iam_user.name

    def _start_lease(self) -> None:
        # Past its lease this run writes no target, so a later run may take the key as abandoned. The
        # lease is recorded before the key exists, so that even a key whose run died at once is known.
        self.created = self.now()
        self.lease_end = self.created + timedelta(seconds=self.lease_seconds)
        self.github.deadline = time.monotonic() + self.lease_seconds - self._margin

    @property
    def _lease(self) -> tuple[datetime, datetime]:
        """(when this run's lease started, when it ends)."""
        if self.created is None or self.lease_end is None:  # _start_lease sets both
            raise RuntimeError("the lease has not started")
        return self.created, self.lease_end

    def intent_on_creation(self) -> list[dict[str, str]]:
        """For a new user: CreateUser's tags carry the intent and each target's entry as "the next key"."""
        self._start_lease()
        self.created_user = True
        return [
            intent_tag(*self._lease, []),
            *[holder_tag(t.scope, (*t.previous, NEXT)) for t in self.targets],
        ]

    def undo_intent(self) -> None:
        """Best effort, for a new user whose first key was not made: the entries go and the intent is done,
        so that the next run is not refused while this one's lease would run."""
        try:
            iam.tag_user(self.aws, self._user, [intent_done(self.now())])
            iam.untag_user(self.aws, self._user, [holder_tag_key(t.scope) for t in self.targets])
        except BootstrapError:
            pass  # the lease runs out instead

    def _existing(self) -> set[str]:
        return {k.key_id for k in self.keys}

    def _restore_tags(self, targets: list[Target]) -> None:
        """Put every holder entry of `targets` back as it was before this run."""
        back = [holder_tag(t.scope, t.previous) for t in targets if t.previous]
        gone = [holder_tag_key(t.scope) for t in targets if not t.previous]
        iam.tag_user(self.aws, self._user, back)
        iam.untag_user(self.aws, self._user, gone)

    def _drop_new_key(self) -> None:
        iam.delete_key(self.aws, self._user, self.new_key)
        iam.untag_user(self.aws, self._user, [marker_key(self.new_key)])

    def _abort_before_writes(self, what: str, exc: BootstrapError) -> RotationError:
        """Nothing in any target changed yet: delete the new key, then put the record back."""
        try:
            iam.delete_key(self.aws, self._user, self.new_key)
        except BootstrapError as cleanup:
            return RotationError(
                f"{what} failed ({exc.message}); deleting the new key {self.new_key} then failed too "
                f"({cleanup.message}). No target was changed.",
                fix=f"Delete access key {self.new_key} of {self._user} in IAM, then rerun.",
            )
        try:
            self._restore_tags(self.targets)
            iam.untag_user(self.aws, self._user, [marker_key(self.new_key)])
        except BootstrapError:
            pass  # entries naming a key that no longer exists are ignored by every later run
        self.report.access_key_id = ""
        self.report.add("Access key", self.new_key, "deleted", "rolled back before any target changed")
        return RotationError(
            f"{what} failed: {exc.message}. Rolled back: the new key {self.new_key} was deleted; "
            "no target was changed and every target keeps its previous key.",
            fix=exc.fix,
        )

    def _yield_to_an_earlier_run(self, created_at: datetime) -> None:
        """With no key at look-up, the 2-key limit does not stop a second run: if another run made a key
        meanwhile, the later one (both, on a tie) deletes its own and stops, so one key is written."""
        others = [k for k in iam.list_keys(self.aws, self._user) if k.key_id != self.new_key]
        if any(k.created <= created_at for k in others):
            iam.delete_key(self.aws, self._user, self.new_key)
            self.report.access_key_id = ""
            self.report.add("Access key", self.new_key, "deleted", "another run made one at the same time")
            raise RotationError(
                f"Another run created an access key for {self._user} at the same moment "
                f"({', '.join(k.key_id for k in others)}); this run deleted its own key {self.new_key} and "
                "stopped before writing any target.",
                fix="Rerun once the other run has finished; serialise runs for one user with a workflow "
                "concurrency group.",
            )

    # -- the transaction -----------------------------------------------------------------------------

    def run(self) -> None:
        wf = self.workflow
        if self.plan.reclaim:
            orphan = self.plan.reclaim.key_id
            wf.info(f"Reclaiming access key {orphan}: no target holds it (2 keys is the IAM limit).")
            iam.delete_key(self.aws, self._user, orphan)
            iam.untag_user(self.aws, self._user, [marker_key(orphan)])
            self.keys = [k for k in self.keys if k.key_id != orphan]
            self.record.adopted.discard(orphan)
            self.report.add("Access key", orphan, "deleted", "orphan that no target held")

        had_keys = bool(self.keys)
        if not self.created_user:
            self._start_lease()
            iam.tag_user(
                self.aws,
                self._user,
                [
                    intent_tag(*self._lease, [k.key_id for k in self.keys]),
                    *self.record.adopted_tags(),
                ],
            )
        try:
            key_id, secret, created_at = iam.create_key(self.aws, self._user)
        except BootstrapError as exc:
            if self.created_user and not is_code(exc, "LimitExceeded"):
                self.undo_intent()
            raise
        wf.mask(secret)  # before anything else is printed
        self.new_key, self._secret = key_id, secret
        self.report.access_key_id = key_id
        wf.info(f"Created access key {key_id}.")
        if not self.created_user:
            if not had_keys:
                self._yield_to_an_earlier_run(created_at)
            try:
                iam.tag_user(
                    self.aws,
                    self._user,
                    [marker_tag(key_id, "pending", *self._lease)]
                    + [holder_tag(t.scope, (*t.previous, key_id)) for t in self.targets],
                )
            except BootstrapError as exc:
                raise self._abort_before_writes("Recording the new key on the user", exc) from exc

        # A rotation proves the new key before any target leaves its working key for it; a first key
        # replaces nothing, and its targets held no pair to lose.
        if had_keys:
            arn = self._iam_user.arn
            try:
                tries = sts.wait_until_usable(self.aws, key_id, secret, arn, self.key_wait_seconds)
            except AwsError as exc:
                raise self._abort_before_writes("Proving the new key works", exc) from exc
            wf.info(f"STS accepted the new key as {arn} (after {tries} tr{'y' if tries == 1 else 'ies'}).")

        try:
            for t in self.targets:
                self.github.put_secret(t.place, self.names.repository_uri, self.repository_uri)
        except GitHubError as exc:
            raise self._abort_before_writes(f"Writing {self.names.repository_uri}", exc) from exc

        results: dict[str, TargetResult] = {}
        failure: GitHubError | None = None
        for t in self.targets:
            if (
                failure is None
                and self.lease_end
                and self.now() >= self.lease_end - timedelta(seconds=self._margin)
            ):
                failure = GitHubError(
                    f"This run's lease of {self.lease_seconds:g} s ran out before {t.repository} was "
                    "written (GitHub was too slow); it stops so that a later run can take over safely"
                )
            if failure is not None:
                results[t.scope] = TargetResult(t.repository, "unchanged", "not reached", t.requested)
                continue
            state, detail, failure = self._write_pair(t)
            results[t.scope] = TargetResult(t.repository, state, detail, t.requested)
            wf.info(f"{t.repository}: {state}{' (' + detail + ')' if detail else ''}")
        self.report.targets = [results[t.scope] for t in self.targets]
        self._commit(results)
        if failure is not None:
            raise self._failure_error(failure, results)

    def _write_pair(self, t: Target) -> tuple[str, str, GitHubError | None]:
        """Returns (state, detail, error): state is written, unchanged, restored or unknown."""
        # Each write is compared, when its outcome is open, with the one this run made just before it.
        try:
            self.github.put_secret(t.place, self.names.key_id, self.new_key, after=self.names.repository_uri)
        except GitHubError as exc:
            if not exc.ambiguous:  # refused, or read back as not written: nothing changed
                return "unchanged", f"{self.names.key_id} not written; previous pair kept", exc
            return (*self._restore_id(t), exc)
        try:
            self.github.put_secret(t.place, self.names.secret_key, self._secret, after=self.names.key_id)
        except GitHubError as exc:
            if exc.ambiguous:  # even reading it back could not tell: the pair may be either key's
                return "unknown", f"{self.names.secret_key} may or may not have been written", exc
            return (*self._restore_id(t), exc)
        return "written", "", None

    def _restore_id(self, t: Target) -> tuple[str, str]:
        """The secret did not change (or may not have): point the id back at the previous key."""
        live = [k for k in t.previous if k in self._existing()]
        try:
            if len(live) == 1:
                self.github.put_secret(t.place, self.names.key_id, live[0])
                return "restored", f"{self.names.key_id} set back to {live[0]}, the key it holds"
            if not t.previous:
                self.github.delete_secret(t.place, self.names.key_id)
                return "restored", f"{self.names.key_id} removed again (it had no key of this user before)"
        except GitHubError as exc:
            return "unknown", f"restoring {self.names.key_id} failed too ({exc.message})"
        return "unknown", "its previous key is not known, so it could not be restored"

    def _commit(self, results: dict[str, TargetResult]) -> None:
        """Narrow each holder entry to what the target now holds; keep the new key only if held."""
        new = self.new_key
        tags, untag = [], []
        for t in self.targets:
            state = results[t.scope].state
            if state == "written":
                tags.append(holder_tag(t.scope, (new,)))
            elif state == "unknown":
                tags.append(holder_tag(t.scope, (*t.previous, new)))
            elif t.previous:
                tags.append(holder_tag(t.scope, t.previous))
            else:
                untag.append(holder_tag_key(t.scope))
        held = any(r.state in ("written", "unknown") for r in results.values())
        if held:
            tags.append(marker_tag(new, "active", self.created or self.now()))
        if self.policy_version:
            tags.append(policy_tag(*self.policy_version))
        iam.tag_user(self.aws, self._user, tags)
        iam.untag_user(self.aws, self._user, untag)
        if not held:
            self._drop_new_key()
            self.report.access_key_id = ""
            self.report.add("Access key", new, "deleted", "rolled back: no target holds it")
        else:
            self.report.add(
                "Access key",
                new,
                "created",
                "written to every target"
                if all(r.state == "written" for r in results.values())
                else "held by some targets",
            )
        self._retire()

    def _retire(self) -> None:
        """Delete older keys that, by the record as it is now (other runs included), nothing holds."""
        old = [k.key_id for k in self.keys if k.key_id != self.new_key]
        if not old:
            return
        # Keys adopted through an earlier intent were tagged by this run's first TagUser: parse suffices.
        record = parse(iam.list_tags(self.aws, self._user))
        done = retirable(old, record, self.now(), self.retire_unmanaged)
        for key_id in done:
            iam.delete_key(self.aws, self._user, key_id)
            self.report.add("Access key", key_id, "deleted", "replaced; no target holds it")
        iam.untag_user(
            self.aws,
            self._user,
            [marker_key(k) for k in done if k in record.markers],
        )
        for key_id in old:
            if key_id in done:
                continue
            holders = sorted(record.holders_of(key_id))
            if holders:
                why = "still held by " + ", ".join(holders)
            elif key_id not in record.markers and not self.retire_unmanaged:
                why = "not created by this action (see retire-unmanaged-keys)"
                self.workflow.warning(
                    f"Access key {key_id} of {self._user} was not created by this action and was "
                    "left alone. While it exists, the next run has no free key slot (IAM allows 2). "
                    "Delete it once nothing uses it, or set retire-unmanaged-keys: true.",
                    title="Unmanaged access key kept",
                )
            else:
                why = "being written by another run"
            self.report.add("Access key", key_id, "kept", why)

    def _failure_error(self, failure: GitHubError, results: dict[str, TargetResult]) -> RotationError:
        parts = [
            f"{r.repository}: {r.state}{' (' + r.detail + ')' if r.detail else ''}" for r in results.values()
        ]
        unknown = any(r.state == "unknown" for r in results.values())
        held = any(r.state in ("written", "unknown") for r in results.values())
        if held:
            outcome = (
                f"Partly done: the new key {self.new_key} was kept because some targets hold it; "
                "keys that other targets still hold were kept too."
            )
        else:
            outcome = (
                f"Rolled back: the new key {self.new_key} was deleted and every target keeps the key it had."
            )
        fix = "Rerun once GitHub answers again; the record on the IAM user makes the rerun safe."
        if unknown:
            fix = (
                "A target's secrets may now be a mismatched pair: rerun to write a fresh pair "
                "(both keys are kept until then)."
            )
        return RotationError(
            f"{failure.message}. {outcome} Targets: " + "; ".join(parts) + ".",
            fix=fix,
        )
