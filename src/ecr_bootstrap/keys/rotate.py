"""The key rotation: lease -> create -> prove -> write -> commit -> retire, over a log of what exists
(commit.py); rollback.py is the one way back, for faults and cancellations alike. The secret is shown
once, so: a target always holds the id and secret of one live key, and a key any target may hold is never
deleted. Before a target changes, its record entry says "old or new key", so a crash leaves both keys alive
until a later run tells, from GitHub's timestamps, which one it holds. `retire` is the one place that
deletes an older key (for retire-user-keys too)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..aws import AwsClients, ecr, iam
from ..cancel import signals_blocked
from ..errors import AwsError, BootstrapError, Cancelled, GitHubError, KeyRaced, LeaseExpired, RotationError
from ..look import IAM_READ_LAG
from ..plan import Step, Target
from ..report import Report, key_table
from ..times import WriteDeadline, iso
from ..workflow import Workflow
from .commit import KeyCreated, LeaseRecord, Pair, RotationState, Stage, Tags, outcome
from .record import NEXT, AccessKey, Record, RunId, adopted_tags, holder_tags
from .rollback import broken, failure_error, restore_id, rollback
from .rules import CREATE_WINDOW, FRESH, UNMANAGED, hidden, kept_because, read_record


class Proof:
    """A first key's ECR proof, run beside the GitHub writes: a thread asks ECR for a registry token with the
    new key while the targets are written; the run joins it before the commit. Started when made. A daemon
    thread: a cancelled or failed run abandons it (its rollback does not wait for ECR), and it never takes
    the runner's signals, which stay with the run's own thread."""

    def __init__(self, aws: AwsClients, key: KeyCreated, seconds: float) -> None:
        client = ecr.key_client(aws, key.key_id, key.secret)  # here: a botocore session is not thread-safe
        self.tries = 0
        self.error: Exception | None = None
        self._thread = threading.Thread(
            target=self._run, args=(client, key.key_id, seconds), name="ecr-proof", daemon=True
        )
        with signals_blocked():
            self._thread.start()

    def _run(self, client: Any, key_id: str, seconds: float) -> None:
        try:
            self.tries = ecr.wait_until_authorized(client, key_id, seconds)
        except Exception as exc:  # noqa: BLE001 - result() raises it in the run's thread
            self.error = exc

    def result(self, timeout: float) -> int:
        """Waits for the proof at most `timeout` seconds (a signal still interrupts the wait); the number of
        tries, or what the proof raised (an AwsError when ECR never gave the key a token, or it did not
        finish in time)."""
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            raise AwsError("ECR had not answered the proof before this run's lease ran out", code="timeout")
        if self.error is not None:
            raise self.error
        return self.tries


class Rotation(RotationState):
    def run(self) -> None:
        try:
            if not self.provisioned:
                with self.workflow.group("IAM user"):
                    self.stage = Stage.USER
                    self._ensure_user()
            with self.workflow.group("Access key and GitHub secrets"):
                self.stage = Stage.INTENT if self.created_user else Stage.START
                self._rotate()
        except Cancelled as exc:
            exc.handled = True  # the first statement: no signal is handled before it (cancel.py)
            raise broken(self, rollback(self, exc)) from None
        except BootstrapError as exc:  # rolled back where it happened, as far as it had to be
            raise broken(self, exc) from None

    def _ensure_user(self) -> None:
        """A new user is created with this run's intent and its targets' entries as its tags (a run racing
        this one finds the user with them, and stops); an existing one is reused. Then the policy."""
        if self.user is None:
            s, self.created_user = self.settings, True
            tags = self._intent()
            self.user = iam.create_user(self.aws, s.iam_user, s.tags, tags, boundary=s.permissions_boundary)
        self.report.changes.append(self.rotate.user.done())
        self.report.user_arn = self.user.arn
        if self.attach:
            try:
                iam.attach_policy(self.aws, self.user.name, self.attach)
            except BootstrapError as exc:
                raise rollback(self, exc) from None
        self.report.changes.append(self.rotate.attachment.done())

    def _rotate(self) -> None:
        self._reclaim()
        had_keys = bool(self.keys)
        if not self.created_user:
            self.stage = Stage.INTENT
            iam.tag_user(self.aws, self.user_name, self._intent(*adopted_tags(self.record)))
        key = self._create_key()
        # A rotation proves the new key before any target leaves its working key for it; a first key
        # replaces nothing (its targets held no pair to lose), so its proof runs beside the writes.
        proof = None if had_keys else Proof(self.aws, key, self.settings.key_wait_seconds)
        self._check_creation(key, had_keys)
        if had_keys:
            self._prove(key)
        self._write_uri()
        if self.lease is not None and any(t.previous for t in self.rotate.targets):
            self.lease.wait_past_reference()
        failure = self._write_targets()
        held = any(key.key_id in o.holds for o in self.outcomes().values())
        unproven = self._first_proof(proof) if proof and held else None  # unheld, it is not kept
        self.stage = Stage.COMMIT
        try:
            self.commit()
        except AwsError as exc:
            raise rollback(self, exc) from exc
        self.stage = Stage.RETIRE
        self._retire()
        self.stage = Stage.DONE
        if failure is not None:
            error = failure_error(self, failure)
            error.message += f" Also: {unproven.message}" if unproven else ""
            raise error
        if unproven is not None:
            raise unproven

    def _reclaim(self) -> None:
        reclaim = self.rotate.keys.reclaim
        if not reclaim:
            return
        detail = self.rotate.reclaim.detail if self.rotate.reclaim else ""
        self.workflow.info(f"Deleting access key {reclaim.key_id} ({detail}); IAM allows 2 keys.")
        iam.delete_key(self.aws, self.user_name, reclaim.key_id)  # its marker goes with the next clean-up
        self.keys = [k for k in self.keys if k.key_id != reclaim.key_id]
        self.record = replace(self.record, adopted=self.record.adopted - {reclaim.key_id})
        self.report.add("Access key", reclaim.key_id, "deleted", detail)

    def _intent(self, *adopted: dict[str, str]) -> Tags:
        """This run's lease, taken now (pending), the markers of `adopted` keys, and each target's entry as
        "old or the next key" (the key this run makes is found through the intent if it dies). The entries
        carry no reference (the lease does): a run whose read lagged and that writes the same entry again
        changes nothing that settles it."""
        existing = tuple(k.key_id for k in self.keys)
        self.lease = LeaseRecord.take(self.lease_tag, self.now(), self.settings, existing, self.log)
        reference = self.github.reference()
        if reference is not None:
            self.lease.ref, self.lease.ref_at = reference
        entries = [tag for t in self.rotate.targets for tag in holder_tags(t.place, (*t.previous, NEXT))]
        return [*self.lease.tags("pending"), *adopted, *entries]

    def _create_key(self) -> KeyCreated:
        self.stage = Stage.CREATING
        try:
            key_id, secret, created_at = iam.create_key(self.aws, self.user_name)
        except BootstrapError as exc:
            raise rollback(self, exc) from None
        self.workflow.mask(secret)  # before anything else is printed
        key = KeyCreated(key_id, created_at, secret)
        self.log.add(key)
        self.stage = Stage.CREATED
        self.report.access_key_id = key_id
        self.workflow.info(f"Created access key {key_id}.")
        return key

    def _check_creation(self, key: KeyCreated, had_keys: bool) -> None:
        """Made after the intent's creation window, a later run would not know the key as this run's; made
        for an existing user that had no key, it may have raced another run's."""
        if self.lease and key.created > self.lease.since + CREATE_WINDOW:
            late = RotationError(f"IAM took longer than {CREATE_WINDOW} to create it")
            raise rollback(self, late, "Creating the key")
        if self.created_user or had_keys:
            return
        # With no key at look-up, the 2-key limit does not stop a second run: if another run made a key
        # meanwhile, the later one (both, on a tie) deletes its own and stops, so one key is written. IAM's
        # reads may lag its writes (IAM User Guide, "Troubleshoot IAM": changes are not always immediately
        # visible), so the keys are listed once that lag is over: a list taken at once could miss a key
        # that a racing run made a moment earlier, and leave the two targets holding different keys, with
        # no slot left for the next rotation. Only an existing user with no key pays this wait.
        time.sleep(IAM_READ_LAG)
        what, user = "Checking for a key made by another run", self.user_name
        try:
            others = [k for k in iam.list_keys(self.aws, user) if k.key_id != key.key_id]
        except BootstrapError as exc:
            raise rollback(self, exc, what) from None
        if any(k.created <= key.created for k in others):
            raced = KeyRaced(  # the rollback adds what became of this run's key
                f"Another run created an access key for {user} first ({', '.join(k.key_id for k in others)})",
                fix="Rerun once the other run has finished; serialise runs for one user with a workflow "
                "concurrency group keyed on the IAM user.",
            )
            raise rollback(self, raced, what)

    def _prove(self, key: KeyCreated) -> None:
        client = ecr.key_client(self.aws, key.key_id, key.secret)
        try:
            tries = ecr.wait_until_authorized(client, key.key_id, self.settings.key_wait_seconds)
        except AwsError as exc:
            raise rollback(self, exc, "Proving the new key can reach ECR") from exc
        self._proven(tries)

    def _first_proof(self, proof: Proof) -> AwsError | None:
        """A first key's proof, joined before the commit. If ECR never gave the key a token, nothing is rolled
        back: the targets held no pair before, the key is the only one and may work once the denial is
        lifted (or a moment later); it is committed as held, and the run fails with the proof's error."""
        # The commit comes after it, and must come within the lease.
        left = self.lease.local.left() if self.lease else self.settings.key_wait_seconds
        try:
            self._proven(proof.result(left))
        except AwsError as exc:
            self.proof = f"not proven: ECR gave it no registry token ({exc.code or 'failed'})"
            exc.message += (
                " Nothing was rolled back: the key was written and kept (no target held a key before), "
                "and it may work once this is fixed, or a moment later."
            )
            return exc
        return None

    def _proven(self, tries: int) -> None:
        self.proof = "proven with ECR"
        self.workflow.info(
            f"ECR gave the new key a registry token (after {tries} tr{'y' if tries == 1 else 'ies'})."
        )

    def _write_uri(self) -> None:
        name, lease = self.settings.secret_names.repository_uri, self.lease.local if self.lease else None
        try:
            for t in self.rotate.targets:
                self.github.put_secret(t.place, name, self.repository_uri, deadline=lease)
        except GitHubError as exc:
            raise rollback(self, exc, f"Writing {name}") from exc

    def _write_targets(self) -> GitHubError | None:
        """Each target's pair in turn; none is started once the lease is (nearly) over. Returns the first
        failure: the rest are left as they were."""
        self.stage = Stage.WRITING
        failure: GitHubError | None = None
        lease = self.lease.local if self.lease else None
        for t in self.rotate.targets:
            if failure is None and lease is not None and lease.left() <= 0:
                failure = LeaseExpired(
                    f"This run's lease of {self.settings.lease_seconds:g} s ran out before {t.repository} "
                    "was written (GitHub was too slow); it stops so that a later run can take over safely"
                )
            if failure is None:
                failure = self._write_pair(t, lease)
                self.workflow.info(outcome(self.log, t, self.settings.secret_names).line(t.repository))
        self.report.targets = self.results()
        return failure

    def _write_pair(self, t: Target, lease: WriteDeadline | None) -> GitHubError | None:
        """Returns the failure, if any; each outcome goes to the log. The id goes before the secret because
        an id can be restored (IAM lists it) and a secret cannot: if the secret write fails, writing the old
        id back leaves the old pair whole. A write whose outcome stays unknown may still land (github/api.py,
        LATE_WINDOW): no other value is written to that secret, so both keys stay possible. Each write is
        compared, when its outcome is open, with the one this run made just before it."""
        key, names = self.key, self.settings.secret_names
        self.note(t, Pair.ID_SENT)
        try:
            self.github.put_secret(
                t.place, names.key_id, key.key_id, after=names.repository_uri, deadline=lease
            )
        except GitHubError as exc:
            # Lost: it may still land, so the old id is not put back over it; else refused: nothing changed.
            self.note(t, Pair.ID_UNCERTAIN if exc.ambiguous else Pair.ID_REFUSED)
            return exc
        self.note(t, Pair.ID_WRITTEN)
        self.note(t, Pair.SECRET_SENT)
        try:
            self.github.put_secret(t.place, names.secret_key, key.secret, after=names.key_id, deadline=lease)
        except GitHubError as exc:
            if exc.ambiguous:  # even reading it back could not tell
                self.note(t, Pair.SECRET_UNCERTAIN)
            else:
                restore_id(self, t, lease)
            return exc
        self.note(t, Pair.SECRET_WRITTEN)
        return None

    def _retire(self) -> None:
        """Carry out the plan's fates over the record as this run read it and then committed it (not read
        again: under the lease no other run writes entries, and IAM's read could lag the commit). A key the
        look showed that is gone already means the look was stale: keys it hid are retired too. Then the
        summary's key table: the user's keys with their ages and holders."""
        key, holdings = self.key, {scope: o.holds for scope, o in self.outcomes().items()}
        self.record = self.record.with_holders(holdings)
        fates = fates_now(self.rotate.fates, self.record, self.now(), self.settings.run)
        deleted = {f.name for f in fates if f.action == "delete"}
        if not retire(self.aws, self.user_name, fates, self.workflow, self.report):
            seen = [k.key_id for k in self.rotate.keys_before] + [key.key_id]
            where = ([t.scope for t in self.rotate.targets], self.settings.run.server)
            deleted |= set(retire_hidden(self.aws, self.user_name, seen, where, self.report))
        keys = [k for k in self.keys if k.key_id not in deleted]
        if any(key.key_id in ids for ids in holdings.values()):
            keys.append(AccessKey(key.key_id, key.created))
            self.report.key_created = iso(key.created)
        self.report.keys = key_table(keys, self.record, self.now())


_HIDDEN = (
    "made by an earlier run that this run's look did not show yet (IAM's reads lag its writes); "
    "no place holds it"
)


def fates_now(planned: Iterable[Step], record: Record, now: datetime, run: RunId | None) -> tuple[Step, ...]:
    """The plan's key fates against the record once the run's writes are done: a key the plan lets go stays
    while a place holds it or a run writes it (a target this run failed to write still holds its key)."""
    out = []
    for step in planned:
        why = kept_because(record, step.name, now, run) if step.action == "delete" else ""
        out.append(replace(step, action="keep", detail=why) if why else step)
    return tuple(out)


def retire(
    aws: AwsClients,
    user: str,
    fates: Iterable[Step],
    workflow: Workflow,
    report: Report,
    *,
    warn: bool = False,
) -> bool:
    """Delete the keys the fates let go and say why each other key stays (`warn`: every kept key is a
    warning, as when switching away from keys). Returns False when a key to delete was already gone."""
    fates = list(fates)
    fresh = True
    for fate in fates:
        if fate.action == "delete":
            fresh = iam.delete_key(aws, user, fate.name) and fresh
            report.changes.append(fate.done())
    for fate in (f for f in fates if f.action == "keep"):
        if warn:
            workflow.warning(
                f"Access key {fate.name} of {user} was kept: {fate.detail}.", title="Access key kept"
            )
        elif fate.detail == UNMANAGED:
            workflow.warning(
                f"Access key {fate.name} of {user} was not created by this action and was left alone. While "
                "it exists, the next run has no free key slot (IAM allows 2). Delete it once nothing uses "
                "it, or set retire-unmanaged-keys: true.",
                title="Unmanaged access key kept",
            )
        elif fate.detail == FRESH:
            workflow.info(
                f"Access key {fate.name} of {user} was kept: {FRESH}. A run a minute from now decides."
            )
        report.changes.append(fate.done())
    return fresh


def retire_hidden(
    aws: AwsClients, user: str, seen: Iterable[str], where: tuple[list[str], str], report: Report
) -> list[str]:
    """After a stale look (IAM's reads lag its writes: IAM User Guide, "Troubleshoot IAM"), once IAM's lag
    is over: delete the keys that an earlier run made and the look did not show (keys.rules.hidden).
    `where`: this run's target scopes and GITHUB_SERVER_URL. Returns the keys deleted."""
    time.sleep(IAM_READ_LAG)
    keys = iam.list_keys(aws, user)
    scopes, server = where
    record = read_record(iam.list_tags(aws, user), keys, scopes, server)
    gone = hidden(keys, record, seen, aws.iam_now())
    for key_id in gone:
        iam.delete_key(aws, user, key_id)
        report.add("Access key", key_id, "deleted", _HIDDEN)
    return gone
