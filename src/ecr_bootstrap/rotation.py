"""The key rotation transaction: lease -> create -> record -> prove -> write -> commit (lease done) -> retire.

The secret access key is shown once, so safety follows from two rules: a target must always hold an id and
secret of one live key, and a key that any target may hold is never deleted.

Per target, ECR_REPOSITORY_URI is written first (it is not a credential; nothing to undo), then
AWS_ACCESS_KEY_ID, then AWS_SECRET_ACCESS_KEY. The id goes before the secret because an id can be restored
(IAM lists it) and a secret cannot: if the secret write fails, writing the old id back leaves the old pair
whole. Before any target changes, its record on the user says "old or new key" with a GitHub reference
second, so a crash at any point leaves both keys alive until a later run can tell, from GitHub's own
timestamps, which one the target holds.

A new user is created with the intent and the targets' entries ("the next key") as CreateUser's own tags:
no other run can write its record before this run's key is marked. A cancelled job (SIGINT or SIGTERM)
raises Cancelled wherever the run waits; the run then undoes what it started with short, single-try
requests and releases its lease.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .aws import AwsClients, ecr, iam, is_code
from .cancel import ROLLBACK_REQUEST
from .deadline import WriteDeadline
from .errors import AwsError, BootstrapError, Cancelled, GitHubError, KeyRaced, LeaseExpired, RotationError
from .github import GitHub
from .inputs import SecretNames, Settings
from .keys.record import (
    LEASE_PREFIX,
    NEXT,
    AccessKey,
    Lease,
    Record,
    RunId,
    adopted_tags,
    holder_parts,
    holder_tags,
    lease_tags,
    marker_key,
    marker_tag,
    policy_tag,
    tag_parts,
)
from .keys.retire import retire, retire_hidden
from .keys.rules import CREATE_WINDOW, KeyPlan
from .keys.settle import GAP
from .look import IAM_READ_LAG
from .plan import Rotate, Target, fates_now, reclaim_step
from .report import Report, TargetResult, key_table
from .times import iso, readable
from .workflow import Workflow

# A pair is not started with less of the lease left than this (two writes at the client's timeout).
LEASE_MARGIN = 35.0
# Markers of deleted keys are removed this many at a time, once older than STALE_AGE.
STALE_BATCH = 5
STALE_AGE = timedelta(minutes=10)


@dataclass
class Rotation:
    """Built whole from the plan, once the repository and the policy exist; `run` does the rest."""

    aws: AwsClients
    github: GitHub
    workflow: Workflow
    report: Report
    settings: Settings
    rotate: Rotate  # the plan's key decisions and the record as it settled it
    user: iam.User | None  # None: this run creates the user, with its intent as CreateUser's tags
    attach: str  # the policy ARN to attach to the user ("" when it is attached already)
    repository_uri: str
    policy_version: tuple[str, str] | None  # (name, default version), remembered in the record
    now: Callable[[], datetime]  # IAM's clock, as this run sees it
    provisioned: bool = False  # the user exists and has the policy (a second try after LimitExceeded)
    keys: list[AccessKey] = field(init=False)
    record: Record = field(init=False)
    plan: KeyPlan = field(init=False)
    targets: list[Target] = field(init=False)
    lease_tag: str = field(default_factory=lambda: LEASE_PREFIX + secrets.token_hex(4))
    created_user: bool = False  # this run made the user with its intent: no other run can race it
    new_key: str = ""
    new_created: datetime | None = None  # the new key's CreateDate, as IAM answered it
    created: datetime | None = None
    lease_end: datetime | None = None
    lease: WriteDeadline | None = (
        None  # the part of the lease in which targets are written (passed with each write)
    )
    ref: int | None = None  # GitHub's second before this run's first target write (see keys.settle)
    ref_at: float = 0.0  # monotonic time the reference arrived
    stage: str = "start"  # how far the run got: what a cancellation must undo
    writing: tuple[Target, str] | None = None  # the target and secret being written right now
    results: dict[str, TargetResult] = field(default_factory=dict)
    _committed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scope -> ids, as committed
    _holds: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)  # unknown: (ids, rewrite)
    _secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self.keys = list(self.rotate.keys_before)
        self.record = self.rotate.record
        self.plan = self.rotate.keys
        self.targets = list(self.rotate.targets)

    @property
    def names(self) -> SecretNames:
        return self.settings.secret_names

    @property
    def run_id(self) -> RunId:
        return self.settings.run

    @property
    def retire_unmanaged(self) -> bool:
        return self.settings.retire_unmanaged_keys

    @property
    def lease_seconds(self) -> float:
        return self.settings.lease_seconds

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
        now = self.now()
        self.created = now.replace(microsecond=0)
        self.lease_end = self.created + timedelta(seconds=self.lease_seconds)
        # The recorded end counts from the whole second: the local lease ends no later than it.
        self.lease = WriteDeadline.lasting((self.lease_end - now).total_seconds() - self._margin)
        reference = self.github.reference()
        if reference is not None:
            self.ref, self.ref_at = reference

    def _intent(self, state: str) -> list[dict[str, str]]:
        return lease_tags(
            Lease(
                state,
                self.created,
                self.lease_end,
                tuple(k.key_id for k in self.keys),
                self.new_key if state != "pending" else "",
                self.run_id if self.run_id.run_id else None,
                self.ref,
                self.lease_tag,
            )
        )

    def _entry(self, t: Target, ids: tuple[str, ...], ref: bool = False) -> list[dict[str, str]]:
        """A holder entry. Written with the lease it carries no reference (the lease does): a run whose
        read lagged and that writes the same entry again changes nothing that settles it."""
        return holder_tags(t.place, ids, self.ref if ref and len(ids) > 1 else None)

    def _entry_keys(self, t: Target) -> list[str]:
        """Every tag key t's entry may use, as it was and as this run wrote it."""
        wrote = [tag["Key"] for tag in self._entry(t, (*t.previous, self.new_key or NEXT))]
        return list(dict.fromkeys(holder_parts(self.record, t.scope) + wrote))

    def intent_on_creation(self) -> list[dict[str, str]]:
        """For a new user: CreateUser's tags carry the intent and each target's entry as "the next key"."""
        self._start_lease()
        self.created_user = True
        return [
            *self._intent("pending"),
            *[tag for t in self.targets for tag in self._entry(t, (*t.previous, NEXT))],
        ]

    def undo_intent(self) -> None:
        """Best effort, for a new user whose first key was not made: the entries go and the intent is done,
        so that the next run is not refused while this one's lease would run."""
        try:
            iam.tag_user(self.aws, self._user, self._intent("done"))
            iam.untag_user(self.aws, self._user, [k for t in self.targets for k in self._entry_keys(t)])
        except BootstrapError:
            pass  # the lease runs out instead

    def _existing(self) -> set[str]:
        return {k.key_id for k in self.keys}

    def _restore_tags(self, targets: list[Target]) -> tuple[list[dict[str, str]], list[str]]:
        """Tags that put every holder entry of `targets` back as it was before this run."""
        back = [tag for t in targets if t.previous for tag in self._entry(t, t.previous)]
        gone = [k for t in targets if not t.previous for k in self._entry_keys(t)]
        return back, gone

    def _drop_new_key(self) -> None:
        iam.delete_key(self.aws, self._user, self.new_key)

    def _abort_before_writes(self, what: str, exc: BootstrapError | Cancelled) -> BootstrapError | Cancelled:
        """Nothing in any target changed yet: delete the new key, then put the record back (lease done)."""
        try:
            iam.delete_key(self.aws, self._user, self.new_key)
        except BootstrapError as cleanup:
            self._release("pending")  # a later run adopts the key (its creation window) and reclaims it
            return RotationError(
                f"{what} failed ({exc.message}); deleting the new key {self.new_key} then failed too "
                f"({cleanup.message}). No target was changed.",
                fix=f"Delete access key {self.new_key} of {self._user} in IAM, then rerun.",
            )
        back, gone = self._restore_tags(self.targets)
        try:
            iam.tag_user(self.aws, self._user, back + self._intent("done"))
        except BootstrapError:
            self._drop_intent()
        with contextlib.suppress(BootstrapError):  # entries naming a deleted key are ignored by later runs
            iam.untag_user(self.aws, self._user, gone)
        self.report.access_key_id = ""
        self.report.add("Access key", self.new_key, "deleted", "rolled back before any target changed")
        self._all_unchanged()
        if isinstance(exc, Cancelled):
            exc.message += (
                f" The new key {self.new_key} was deleted; no target was changed and every target keeps "
                "its previous key."
            )
            return exc
        return RotationError(
            f"{what} failed: {exc.message}. Rolled back: the new key {self.new_key} was deleted; "
            "no target was changed and every target keeps its previous key.",
            fix=exc.fix,
        )

    def _release(self, state: str) -> None:
        """End this run's lease early, so that the next run need not wait for it. `pending` keeps the
        creation window open for a key this run may have made without learning its id."""
        if self.created is None or self.user is None:
            return
        intent = self._intent(state)
        if state == "pending":
            self.lease_end = self.now()
            intent = self._intent("pending")
        try:
            iam.tag_user(self.aws, self._user, intent)
        except BootstrapError:
            if state == "done":
                self._drop_intent()

    def _drop_intent(self) -> None:
        """When the intent cannot be marked done, removing it frees the lease just as well."""
        keys = {t["Key"] for state in ("pending", "done") for t in self._intent(state)}
        keys |= {f"{self.lease_tag}/{n}" for n in range(2, 4)}
        with contextlib.suppress(BootstrapError):  # the lease runs out instead
            iam.untag_user(self.aws, self._user, sorted(keys))

    def _ensure_user(self) -> None:
        """A new user is created with this run's intent and its targets' entries as its tags; an existing
        one is reused. Then the policy is attached, if the plan says so."""
        if self.user is None:
            # The intent rides on CreateUser: a run racing this one finds the user with it, and stops.
            s = self.settings
            self.user = iam.create_user(
                self.aws, s.iam_user, s.tags, self.intent_on_creation(), boundary=s.permissions_boundary
            )
        self.report.changes.append(self.rotate.user.done())
        self.report.user_arn = self.user.arn
        if self.attach:
            try:
                iam.attach_policy(self.aws, self.user.name, self.attach)
            except BootstrapError:
                if self.created_user:
                    self.undo_intent()
                raise
        self.report.changes.append(self.rotate.attachment.done())

    def _cancel_user(self) -> None:
        """Cancelled while the user was being created with this run's intent, or its policy attached: the
        intent is marked done (if the user exists), so that the next run need not wait for the lease."""
        if not self.created_user:
            return
        with contextlib.suppress(BootstrapError):
            self.user = self.user or iam.find_user(self.aws, self.settings.iam_user)
        if self.user is not None:
            self.undo_intent()

    def _all_unchanged(self) -> None:
        self.report.targets = [
            TargetResult(t.repository, "unchanged", "keeps its previous key") for t in self.targets
        ]

    def _yield_to_an_earlier_run(self, created_at: datetime) -> None:
        """With no key at look-up, the 2-key limit does not stop a second run: if another run made a key
        meanwhile, the later one (both, on a tie) deletes its own and stops, so one key is written. IAM's
        reads may lag its writes (IAM User Guide, "Troubleshoot IAM": changes are not always immediately
        visible), so the keys are listed once that lag is over: a list taken at once could miss a key that
        a racing run made a moment earlier, and leave the two targets holding different keys, with no slot
        left for the next rotation. Only an existing user with no key pays this wait."""
        time.sleep(IAM_READ_LAG)
        others = [k for k in iam.list_keys(self.aws, self._user) if k.key_id != self.new_key]
        if any(k.created <= created_at for k in others):
            iam.delete_key(self.aws, self._user, self.new_key)
            self._release("done")
            self.report.access_key_id = ""
            self.report.add("Access key", self.new_key, "deleted", "another run made one first")
            raise KeyRaced(
                f"Another run created an access key for {self._user} first "
                f"({', '.join(k.key_id for k in others)}); this run deleted its own key {self.new_key} and "
                "stopped before writing any target.",
                fix="Rerun once the other run has finished; serialise runs for one user with a workflow "
                "concurrency group keyed on the IAM user.",
            )

    # -- the transaction -----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if not self.provisioned:
                with self.workflow.group("IAM user"):
                    self.stage = "user"
                    self._ensure_user()
            with self.workflow.group("Access key and GitHub secrets"):
                self.stage = "intent" if self.created_user else "start"
                self._run()
        except Cancelled as exc:
            raise self._broken(self._cancel(exc)) from None
        except BootstrapError as exc:
            raise self._broken(exc) from None

    def _broken(self, exc: BootstrapError | Cancelled) -> BootstrapError | Cancelled:
        """After a break-before-make deletion, a failure names the targets left without a working key."""
        if (
            self.plan.breaks
            and self.plan.reclaim
            and self.plan.reclaim.key_id not in {k.key_id for k in self.keys}
        ):
            labels = ", ".join(self.record.place_of(s).label for s in self.plan.breaks)
            exc.message += (
                f" Access key {self.plan.reclaim.key_id} was deleted first to make room (IAM allows 2 "
                f"keys), so {labels} may hold no working key now: rerun this workflow to write them one."
            )
        return exc

    def _run(self) -> None:
        """reclaim -> lease -> create -> prove -> write -> commit (lease done) -> retire."""
        self._reclaim()
        had_keys = bool(self.keys)
        if not self.created_user:
            self._take_lease()
        key_id, secret, created_at = self._create_key()
        if created_at > (self.created or created_at) + CREATE_WINDOW:
            # Later than the intent's creation window: a later run would not know it as this run's.
            raise self._abort_before_writes(
                "Creating the key", RotationError(f"IAM took longer than {CREATE_WINDOW} to create it")
            )
        try:
            if not self.created_user and not had_keys:
                self._yield_to_an_earlier_run(created_at)
        except (RotationError, Cancelled):
            raise
        except BootstrapError as exc:
            raise self._abort_before_writes("Checking for a key made by another run", exc) from exc
        # A rotation proves the new key before any target leaves its working key for it; a first key
        # replaces nothing, and its targets held no pair to lose.
        if had_keys:
            self._prove(key_id, secret)
        try:
            for t in self.targets:
                self.github.put_secret(
                    t.place, self.names.repository_uri, self.repository_uri, deadline=self.lease
                )
        except GitHubError as exc:
            raise self._abort_before_writes(f"Writing {self.names.repository_uri}", exc) from exc
        self._wait_past_reference()
        failure = self._write_targets()
        self.stage = "commit"
        try:
            self._commit(self.results)
        except AwsError as exc:
            raise self._commit_failed(exc) from exc
        self.stage = "retire"
        deleted = self._retire()
        self.stage = "done"
        self._report_keys(created_at, deleted)
        if failure is not None:
            raise self._failure_error(failure, self.results)

    def _reclaim(self) -> None:
        if not self.plan.reclaim:
            return
        orphan = self.plan.reclaim.key_id
        step = reclaim_step(self.plan.reclaim, self.plan, self.record)
        self.workflow.info(f"Deleting access key {orphan} ({step.detail}); IAM allows 2 keys.")
        iam.delete_key(self.aws, self._user, orphan)  # its marker goes with the next clean-up
        self.keys = [k for k in self.keys if k.key_id != orphan]
        self.record = replace(self.record, adopted=self.record.adopted - {orphan})
        self.report.add("Access key", orphan, "deleted", step.detail)

    def _take_lease(self) -> None:
        """One request: the lease, markers of keys an earlier crashed run made, and each target's entry as
        "old or the next key" (the key this run makes: found through the intent if it dies)."""
        self._start_lease()
        self.stage = "intent"
        iam.tag_user(
            self.aws,
            self._user,
            [
                *self._intent("pending"),
                *adopted_tags(self.record),
                *[tag for t in self.targets for tag in self._entry(t, (*t.previous, NEXT))],
            ],
        )

    def _create_key(self) -> tuple[str, str, datetime]:
        self.stage = "creating"
        try:
            key_id, secret, created_at = iam.create_key(self.aws, self._user)
        except BootstrapError as exc:
            if self.created_user:
                self.undo_intent()
            else:
                # LimitExceeded: no key was made (the caller reads IAM again); otherwise one may have been.
                self._release("done" if is_code(exc, "LimitExceeded") else "pending")
            raise
        self.workflow.mask(secret)  # before anything else is printed
        self.new_key, self._secret = key_id, secret
        self.new_created = created_at.replace(microsecond=0)
        self.stage = "created"
        self.report.access_key_id = key_id
        self.workflow.info(f"Created access key {key_id}.")
        return key_id, secret, created_at

    def _prove(self, key_id: str, secret: str) -> None:
        """The new key asks ECR for a registry token before any target leaves its working key for it."""
        try:
            tries = ecr.wait_until_authorized(self.aws, key_id, secret, self.settings.key_wait_seconds)
        except AwsError as exc:
            raise self._abort_before_writes("Proving the new key can reach ECR", exc) from exc
        self.workflow.info(
            f"ECR gave the new key a registry token (after {tries} tr{'y' if tries == 1 else 'ies'})."
        )

    def _write_targets(self) -> GitHubError | None:
        """Each target's pair in turn; none is started once the lease is (nearly) over. Returns the first
        failure: the rest are left as they were."""
        self.stage = "writing"
        failure: GitHubError | None = None
        for t in self.targets:
            if failure is None and self.lease is not None and self.lease.left() <= 0:
                failure = LeaseExpired(
                    f"This run's lease of {self.lease_seconds:g} s ran out before {t.repository} was "
                    "written (GitHub was too slow); it stops so that a later run can take over safely"
                )
            if failure is not None:
                self.results[t.scope] = TargetResult(t.repository, "unchanged", "not reached")
                continue
            state, detail, failure = self._write_pair(t)
            self.results[t.scope] = TargetResult(t.repository, state, detail)
            self.workflow.info(f"{t.repository}: {state}{' (' + detail + ')' if detail else ''}")
        self.report.targets = [self.results[t.scope] for t in self.targets]
        return failure

    @property
    def _lease(self) -> tuple[datetime, datetime]:
        """(when this run's lease started, when it ends)."""
        if self.created is None or self.lease_end is None:  # _start_lease sets both
            raise RuntimeError("the lease has not started")
        return self.created, self.lease_end

    def _wait_past_reference(self) -> None:
        """No key id is written until GAP seconds after the reference second arrived: every write of this
        run then has a later updated_at than every write before it (records.settle)."""
        if self.ref is None or not any(t.previous for t in self.targets):
            return
        pause = self.ref_at + GAP - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _write_pair(self, t: Target) -> tuple[str, str, GitHubError | None]:
        """Returns (state, detail, error): state is written, unchanged, restored or unknown. What the target
        holds afterwards goes to self._holds (for the commit)."""
        # Each write is compared, when its outcome is open, with the one this run made just before it.
        self.writing = (t, self.names.key_id)
        try:
            self.github.put_secret(
                t.place, self.names.key_id, self.new_key, after=self.names.repository_uri, deadline=self.lease
            )
        except GitHubError as exc:
            if not exc.ambiguous:  # refused, or read back as not written: nothing changed
                self.writing = None
                return "unchanged", f"{self.names.key_id} not written; previous pair kept", exc
            return (*self._restore_id(t), exc)
        self.writing = (t, self.names.secret_key)
        try:
            self.github.put_secret(
                t.place, self.names.secret_key, self._secret, after=self.names.key_id, deadline=self.lease
            )
        except GitHubError as exc:
            if (
                exc.ambiguous
            ):  # even reading it back could not tell: its id is the new key's, its secret either
                self.writing = None
                self._holds[t.scope] = ((self.new_key,), True)
                return "unknown", f"{self.names.secret_key} may or may not have been written", exc
            self.writing = (t, self.names.key_id)  # the restore is an id write
            return (*self._restore_id(t), exc)
        self.writing = None
        return "written", "", None

    def _restore_id(self, t: Target) -> tuple[str, str]:
        """The secret did not change (or may not have): point the id back at the previous key."""
        live = [k for k in t.previous if k in self._existing()]
        try:
            if len(live) == 1:
                self.github.put_secret(t.place, self.names.key_id, live[0], deadline=self.lease)
                return "restored", f"{self.names.key_id} set back to {live[0]}, the key it holds"
            if not t.previous:
                self.github.delete_secret(t.place, self.names.key_id, self.lease)
                return "restored", f"{self.names.key_id} removed again (it had no key of this user before)"
        except GitHubError as exc:
            self._holds[t.scope] = (t.previous, True)  # its secret is still the previous key's
            return "unknown", f"restoring {self.names.key_id} failed too ({exc.message})"
        finally:
            self.writing = None
        self._holds[t.scope] = (t.previous, True)
        return "unknown", "its previous key is not known, so it could not be restored"

    def _commit(self, results: dict[str, TargetResult]) -> None:
        """Narrow each holder entry to what the target now holds; keep the new key only if held; mark the
        lease done (all in the same two requests)."""
        new = self.new_key
        tags, untag = self._entries(results)
        held = any(new in ids for ids in self._committed.values())
        if held:
            # The key's own CreateDate: the proof, read back by every later run, that this action made it.
            tags.append(marker_tag(new, "active", self.new_created or self.now()))
        if self.policy_version:
            tags.append(policy_tag(*self.policy_version))
        tags += self._replaced_markers(held)
        tags += self._intent("done")
        written = {t["Key"] for t in tags}
        untag = [k for k in untag if k not in written]
        stale = self._stale_markers()
        if untag or len(stale) >= STALE_BATCH:
            untag += stale
        iam.tag_user(self.aws, self._user, tags)
        iam.untag_user(self.aws, self._user, untag)
        if self.stage == "committed":
            return
        self.stage = "committed"
        if not held:
            self._drop_new_key()
            self.report.access_key_id = ""
            self.report.add("Access key", new, "deleted", "rolled back: no target holds it")
            return
        every = all(r.state == "written" for r in results.values())
        self.report.add(
            "Access key", new, "created", "written to every target" if every else "held by some targets"
        )

    def _replaced_markers(self, held: bool) -> list[dict[str, str]]:
        """Older keys this run replaced and that no place holds once it commits: marked "replaced" in the
        same request, so that a later run retires them if this run's deletion does not happen."""
        if not held:
            return []
        out = []
        alive = {k.key_id for k in self.keys}  # a key deleted to make room needs no mark
        for key_id in sorted(self.rotate.rules.replaced & alive):
            marker = self.record.markers.get(key_id)
            committed = any(key_id in ids for ids in self._committed.values())
            others = any(key_id in ids for s, ids in self.record.holders.items() if s not in self._committed)
            if marker is not None and marker.since is not None and not committed and not others:
                out.append(marker_tag(key_id, "replaced", marker.since))
        return out

    def _entries(self, results: dict[str, TargetResult]) -> tuple[list[dict[str, str]], list[str]]:
        """Each target's entry as it now holds (tags to write, tag keys to remove); sets _committed."""
        new = self.new_key
        tags: list[dict[str, str]] = []
        untag: list[str] = []
        committed: dict[str, tuple[str, ...]] = {}
        for t in self.targets:
            state = results[t.scope].state
            if state == "written":
                committed[t.scope] = (new,)
                tags += self._entry(t, (new,))
            elif state == "unknown":
                ids, rewrite = self._holds.get(t.scope, ((*t.previous, new), True))
                committed[t.scope] = ids
                tags += holder_tags(t.place, ids, self.ref if len(ids) > 1 else None, rewrite)
            elif t.previous:
                committed[t.scope] = t.previous
                tags += self._entry(t, t.previous)
            else:
                committed[t.scope] = ()
                untag += self._entry_keys(t)
        self._committed = committed
        return tags, untag

    def _commit_failed(self, exc: AwsError) -> RotationError:
        held = [r.repository for r in self.results.values() if r.state in ("written", "unknown")]
        until = readable(self.lease_end) if self.lease_end else "the lease ends"
        return RotationError(
            f"Recording the outcome on the IAM user failed ({exc.message}) after the targets were written"
            + (f" ({', '.join(held)} hold(s) the new key {self.new_key})" if held else "")
            + f". Nothing was deleted: both keys are kept. This run's lease ends at {until}; a run after "
            "that settles, from GitHub's timestamps, which key each target holds and retires the other.",
            fix=f"Rerun after {until} (a re-run of this run may start at once), once IAM accepts TagUser "
            "again (iam:TagUser must be allowed).",
        )

    def _stale_markers(self) -> list[str]:
        """Markers of keys that no longer exist (retired by earlier runs). Harmless but they take tags:
        removed STALE_BATCH at a time, so that most commits need no UntagUser. Only markers older than
        STALE_AGE, so that a key a lagging ListAccessKeys does not show yet keeps its marker."""
        now = self.now()
        live = {k.key_id for k in self.keys} | {self.new_key}
        stale = [
            marker_key(key_id)
            for key_id, marker in self.record.markers.items()
            if key_id not in live and marker.since is not None and now - marker.since > STALE_AGE
        ]
        # Other runs' intents, once over for STALE_AGE: done, or pending with every key they made marked
        # (this run's lease write marked the ones it adopted).
        for tag, intent in self.record.leases.items():
            if tag == self.lease_tag or intent.since is None:
                continue
            end = intent.until or intent.since
            made = [k for k, i in self.record.made_by.items() if i is intent]
            if now - end > STALE_AGE and all(k in self.record.adopted or k not in live for k in made):
                stale += tag_parts(self.record, tag)
        return stale

    def _retire(self) -> set[str]:
        """Carry out the plan's fates over the record as this run read it and then committed it (not read
        again: under the lease no other run writes entries, and IAM's read could lag the commit). A key the
        look showed that is gone already means the look was stale: keys it hid are retired too."""
        self.record = self.record.with_holders(self._committed)
        fates = fates_now(self.rotate.fates, self.record, self.now(), self.settings.run)
        deleted = {f.name for f in fates if f.action == "delete"}
        if not retire(self.aws, self._user, fates, self.workflow, self.report):
            seen = [k.key_id for k in self.rotate.keys_before] + [self.new_key]
            where = ([t.scope for t in self.targets], self.settings.run.server)
            deleted |= set(retire_hidden(self.aws, self._user, seen, where, self.report))
        return deleted

    def _report_keys(self, created_at: datetime, deleted: set[str]) -> None:
        """The user's keys after the run, with their ages and holders (the summary's key table)."""
        self.record = self.record.with_holders({s: ids for s, ids in self._committed.items() if ids})
        keys = [k for k in self.keys if k.key_id not in deleted and k.key_id != self.new_key]
        if any(self.new_key in ids for ids in self._committed.values()):
            keys.append(AccessKey(self.new_key, created_at))
            self.report.key_created = iso(created_at)
        self.report.keys = key_table(keys, self.record, self.now())

    # -- cancellation --------------------------------------------------------------------------------

    def _cancel(self, exc: Cancelled) -> Cancelled:
        """Undo what this run started, with short single-try requests, then release the lease."""
        self.workflow.info(f"{exc.signal_name} received while {self.stage}: rolling back.")
        seconds = min(ROLLBACK_REQUEST, max(0.5, exc.remaining() / 2))
        self.aws = self.aws.bounded(seconds)
        self.github = self.github.bounded(seconds)
        self.lease = None  # the rollback's own bound is the client's
        try:
            if self.stage == "user":
                self._cancel_user()
            elif self.stage in ("start", "intent"):
                if self.created_user:
                    self.undo_intent()
                else:
                    self._release("done")
                exc.message += " No key was created and no target was changed."
            elif self.stage == "creating":
                self._cancel_creation(exc)
            elif self.stage == "created":
                self._abort_before_writes("", exc)
            elif self.stage == "writing":
                self._cancel_writes(exc)
            elif self.stage in ("commit", "committed"):
                self._commit(self.results)
                exc.message += " Its record was written; older keys are retired by the next run."
            else:
                exc.message += " Every target was written; older keys are retired by the next run."
        except BootstrapError as failed:
            exc.message += f" Rolling back stopped: {failed.message}. The next run repairs the rest."
        return exc

    def _cancel_creation(self, exc: Cancelled) -> None:
        """CreateAccessKey was on its way: find the key it may have made (not one that existed) and
        delete it; if IAM does not show it (yet), the lease is ended with its creation window open."""
        existing = self._existing()
        made = [k for k in iam.list_keys(self.aws, self._user) if k.key_id not in existing]
        if len(made) == 1 and self.created and made[0].created >= self.created - timedelta(seconds=2):
            iam.delete_key(self.aws, self._user, made[0].key_id)
            self._release("done")
            exc.message += f" The key it was creating ({made[0].key_id}) was deleted; no target was changed."
        else:
            self._release("pending")
            exc.message += " No target was changed; a key it may have created is reclaimed by the next run."
        self._all_unchanged()

    def _cancel_writes(self, exc: Cancelled) -> None:
        """In the middle of the pairs: the target being written gets its old id back (if its secret was
        not on its way), the rest stay as they are, and the record says what each holds."""
        writing = self.writing
        for t in self.targets:
            if t.scope in self.results:
                continue
            if writing is not None and writing[0] is t:
                landed = None
                if writing[1] == self.names.secret_key and exc.remaining() > 1:
                    landed = self.github.landed(t.place, self.names.secret_key, self.names.key_id)
                if landed:
                    state, detail = "written", ""
                elif writing[1] == self.names.key_id or landed is False:
                    state, detail = self._restore_id(t)
                else:
                    state, detail = "unknown", f"{self.names.secret_key} may or may not have been written"
                self.results[t.scope] = TargetResult(t.repository, state, detail)
            else:
                self.results[t.scope] = TargetResult(t.repository, "unchanged", "not reached")
        self.report.targets = [self.results[t.scope] for t in self.targets]
        self._commit(self.results)
        states = ", ".join(f"{r.repository}: {r.state}" for r in self.report.targets)
        exc.message += f" Targets: {states}."

    def _failure_error(self, failure: GitHubError, results: dict[str, TargetResult]) -> RotationError:
        parts = [
            f"{r.repository}: {r.state}{' (' + r.detail + ')' if r.detail else ''}" for r in results.values()
        ]
        unknown = any(r.state == "unknown" for r in results.values())
        held = any(self.new_key in ids for ids in self._committed.values())
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
                "A target's secrets may now be a mismatched pair: rerun to write a fresh pair (the record "
                "marks it to be written anew, and keeps every key its secret may belong to)."
            )
        return RotationError(
            f"{failure.message}. {outcome} Targets: " + "; ".join(parts) + ".",
            fix=fix,
        )
