"""The Postgres job store against a real Postgres: migrations, idempotency, fencing, retries.

Every test that takes `store` or `store_url` runs twice: on Postgres directly and
through a real PgBouncer in transaction pooling (pool 10), as managed Postgres
pools for Lambda. Checks of what landed in the database use `database_url` (direct).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pg8000
import pytest

from chalicelib.auth import hash_key
from chalicelib.db import connect, drop_schema
from chalicelib.jobs import (
    MAX_RETRIES,
    MIGRATIONS_DIR,
    IdempotencyConflict,
    InvalidJobInput,
    JobNotFound,
    JobNotRetryable,
    JobSpec,
    JobStore,
    RetryLimit,
    migrations,
    parse_job_id,
)
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="session")
def migrated(database_url: str, db_schema: str) -> str:
    store = JobStore(database_url, db_schema)
    store.migrate()
    store.close()
    return db_schema


@pytest.fixture(params=["direct", "pgbouncer"])
def store_url(request: pytest.FixtureRequest, database_url: str) -> str:
    """The URL the store under test uses: Postgres itself, or PgBouncer in front of it."""
    if request.param == "pgbouncer":
        return str(request.getfixturevalue("pgbouncer_url"))
    return database_url


@pytest.fixture
def store(store_url: str, migrated: str) -> Iterator[JobStore]:
    store = JobStore(store_url, migrated)
    yield store
    store.close()


@pytest.fixture
def owner() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def fresh_schema(database_url: str, db_schema: str) -> Iterator[str]:
    """An empty schema of this test's own, dropped after."""
    schema = f"{db_schema}_{uuid.uuid4().hex[:6]}"
    yield schema
    drop_schema(database_url, schema)


def spec(owner: str, **changes: object) -> JobSpec:
    values: dict[str, object] = {
        "owner": owner,
        "mode": "genre",
        "genre": "pop",
        "file_key": "uploads/abc/def/track.wav",
        "file_name": "My Track.wav",
        "reference_file_key": None,
        "reference_job_id": None,
        "priority": 0,
    }
    values.update(changes)
    return JobSpec(**values)  # type: ignore[arg-type]


def slow_migrations(tmp_path: Path) -> Path:
    """The real migrations plus one that holds its transaction open a moment,
    widening the window in which two unlocked migrators would collide."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "9000_slow.sql").write_text(
        "SELECT pg_sleep(0.3);\nCREATE TABLE slow_marker (id integer PRIMARY KEY);\n"
    )
    return directory


def applied_versions(database_url: str, schema: str) -> list[str]:
    conn = connect(database_url, schema)
    try:
        return [r[0] for r in conn.run("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        conn.close()


# --- migrations ---------------------------------------------------------------------


def test_migrate_applies_in_order_once(
    store_url: str, database_url: str, fresh_schema: str
) -> None:
    store = JobStore(store_url, fresh_schema)
    try:
        assert store.migrate() == [f"{v}_{n}" for v, n, _ in migrations()]
        assert store.migrate() == []
        assert applied_versions(database_url, fresh_schema) == [v for v, _, _ in migrations()]
        job, _ = store.create(spec("o"))
        assert store.get(job.id) == job
    finally:
        store.close()


def test_migrate_from_two_processes_at_once(
    store_url: str, database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    directory = slow_migrations(tmp_path)
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from chalicelib.jobs import JobStore\n"
        "store = JobStore(sys.argv[1], sys.argv[2])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "print(json.dumps(store.migrate(Path(sys.argv[3]))), flush=True)\n"
    )
    args = [sys.executable, "-c", code, store_url, fresh_schema, str(directory)]
    procs = [
        subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:  # both imported and connected: release them together
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results.append(json.loads(out))
    everything = [f"{v}_{n}" for v, n, _ in migrations(directory)]
    assert sorted(results, key=len) == [[], everything]  # one did it all, the other nothing
    assert applied_versions(database_url, fresh_schema) == [v for v, _, _ in migrations(directory)]


def test_migrate_from_threads_at_once(store_url: str, fresh_schema: str, tmp_path: Path) -> None:
    directory = slow_migrations(tmp_path)
    barrier = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        store = JobStore(store_url, fresh_schema)
        barrier.wait()
        try:
            results.append(store.migrate(directory))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(len(r) for r in results) == len(migrations(directory))


def test_a_failing_migration_leaves_nothing_behind(
    store_url: str, database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "9001_broken.sql").write_text(
        "CREATE TABLE half_done (id integer);\nSELEC oops;\n"
    )
    store = JobStore(store_url, fresh_schema)
    try:
        with pytest.raises(Exception, match="syntax error"):
            store.migrate(directory)
        assert "9001" not in applied_versions(database_url, fresh_schema)
        conn = connect(database_url, fresh_schema)
        assert conn.run("SELECT to_regclass('half_done')")[0][0] is None
        conn.close()
        (directory / "9001_broken.sql").write_text("CREATE TABLE half_done (id integer);\n")
        assert store.migrate(directory) == ["9001_broken"]
    finally:
        store.close()


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNNN_name"):
        migrations(tmp_path)


# --- creating and reading ----------------------------------------------------------


def test_create_and_get_round_trip(store: JobStore, owner: str) -> None:
    job, created = store.create(spec(owner, priority=5))
    assert created
    assert job.status == "queued" and job.progress == 0 and job.attempts == 0
    assert job.lease_token is None and job.result is None and job.error_code is None
    assert job.priority == 5 and job.file_name == "My Track.wav"
    assert job.created_at.tzinfo is not None and job.started_at is None
    assert store.get(job.id) == job
    assert store.get(job.id, owner) == job


def test_to_api_shape(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    body = job.to_api()
    assert body["jobId"] == job.id and body["status"] == "queued"
    assert ISO_Z.match(body["createdAt"])
    assert body["startedAt"] is None and body["completedAt"] is None
    assert "error" not in body and "result" not in body
    started = store.start(job.id, token=7, attempt=1)
    assert started is not None
    assert store.complete(job.id, 7, {"schemaVersion": 1, "x": [1.5, None]})
    done = store.get(job.id)
    assert done is not None
    body = done.to_api()
    assert body["result"] == {"schemaVersion": 1, "x": [1.5, None]}
    assert ISO_Z.match(body["startedAt"]) and ISO_Z.match(body["completedAt"])
    assert "result" not in done.to_api(include_result=False)


@pytest.mark.parametrize(
    "bad_id",
    ["", "nope", "123", "../../etc", "0" * 40, "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", None, 5],
)
def test_malformed_ids_are_not_found(store: JobStore, bad_id: object) -> None:
    assert store.get(bad_id) is None  # type: ignore[arg-type]
    assert store.start(bad_id, 1, 1) is None  # type: ignore[arg-type]
    assert not store.complete(bad_id, 1, {})  # type: ignore[arg-type]


def test_ids_are_case_insensitive(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    assert store.get(job.id.upper()) == job
    assert parse_job_id(job.id.replace("-", "")) == job.id


def test_other_owner_sees_nothing(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    assert store.get(job.id, "someone-else") is None
    assert store.list_for_owner("someone-else") == []
    with pytest.raises(JobNotFound):
        store.retry(job.id, "someone-else")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"mode": "karaoke"}, "invalid_mode"),
        ({"mode": "reference"}, "missing_reference"),
        ({"mode": "reference", "reference_job_id": "not-a-uuid"}, "invalid_field"),
        ({"priority": 5000}, "invalid_field"),
        ({"priority": "high"}, "invalid_field"),
        ({"priority": True}, "invalid_field"),
        ({"file_key": ""}, "invalid_file_key"),
        ({"file_name": "x" * 300}, "invalid_field"),
    ],
)
def test_invalid_specs_are_refused(
    store: JobStore, owner: str, changes: dict[str, object], code: str
) -> None:
    with pytest.raises(InvalidJobInput) as info:
        store.create(spec(owner, **changes))
    assert info.value.code == code
    assert store.list_for_owner(owner) == []


def test_an_empty_owner_is_refused(store: JobStore) -> None:
    with pytest.raises(InvalidJobInput) as info:
        store.create(spec(""))
    assert info.value.code == "invalid_owner"


def test_reference_job_id_is_stored(store: JobStore, owner: str) -> None:
    ref, _ = store.create(spec(owner))
    job, _ = store.create(spec(owner, mode="reference", genre=None, reference_job_id=ref.id))
    assert job.reference_job_id == ref.id and job.mode == "reference"


# --- idempotency -------------------------------------------------------------------------


def test_same_key_same_request_gives_the_same_job(store: JobStore, owner: str) -> None:
    first, created = store.create(spec(owner), idempotency_key="k-1")
    again, created_again = store.create(spec(owner), idempotency_key="k-1")
    assert created and not created_again
    assert again.id == first.id
    assert len(store.list_for_owner(owner)) == 1


def test_same_key_different_request_conflicts(store: JobStore, owner: str) -> None:
    store.create(spec(owner), idempotency_key="k-1")
    with pytest.raises(IdempotencyConflict):
        store.create(spec(owner, genre="rock"), idempotency_key="k-1")
    assert len(store.list_for_owner(owner)) == 1


def test_keys_are_per_owner_and_optional(store: JobStore, owner: str) -> None:
    mine, _ = store.create(spec(owner), idempotency_key="shared")
    theirs, created = store.create(spec(owner + "-b"), idempotency_key="shared")
    assert created and theirs.id != mine.id
    a, _ = store.create(spec(owner))
    b, _ = store.create(spec(owner))
    assert a.id != b.id


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\t", "ünïcode"])
def test_bad_idempotency_keys_are_refused(store: JobStore, owner: str, key: str) -> None:
    with pytest.raises(InvalidJobInput) as info:
        store.create(spec(owner), idempotency_key=key)
    assert info.value.code == "invalid_idempotency_key"


def test_concurrent_submissions_with_one_key_make_one_job(store: JobStore, owner: str) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[tuple[str, bool]] = []

    def submit() -> None:
        barrier.wait()
        job, created = store.create(spec(owner), idempotency_key="race")
        outcomes.append((job.id, created))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 6
    assert len({job_id for job_id, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1


# --- listing ---------------------------------------------------------------------------


def test_list_newest_first_with_filter_and_limit(store: JobStore, owner: str) -> None:
    ids = [store.create(spec(owner, file_name=f"{i}.wav"))[0].id for i in range(5)]
    store.create(spec(owner + "-other"))
    assert [j.id for j in store.list_for_owner(owner)] == ids[::-1]
    assert [j.id for j in store.list_for_owner(owner, limit=2)] == ids[:2:-1]
    assert store.start(ids[1], 1, 1) is not None
    assert store.complete(ids[1], 1, {})
    assert [j.id for j in store.list_for_owner(owner, status="completed")] == [ids[1]]
    assert [j.id for j in store.list_for_owner(owner, status="queued")] == [
        ids[4],
        ids[3],
        ids[2],
        ids[0],
    ]
    assert store.list_for_owner(owner, status="failed") == []


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"status": "done"}, "invalid_status"),
        ({"limit": 0}, "invalid_limit"),
        ({"limit": 101}, "invalid_limit"),
        ({"limit": "5"}, "invalid_limit"),
    ],
)
def test_list_refuses_bad_arguments(
    store: JobStore, owner: str, kwargs: dict[str, object], code: str
) -> None:
    with pytest.raises(InvalidJobInput) as info:
        store.list_for_owner(owner, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code


# --- fencing -------------------------------------------------------------------------------


def test_a_stale_token_writes_nothing(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    started = store.start(job.id, token=10, attempt=1)
    assert started is not None and started.status == "processing" and started.lease_token == 10
    assert started.started_at is not None
    assert store.start(job.id, token=9, attempt=1) is None  # an older claim cannot take it
    assert store.start(job.id, token=10, attempt=1) is None  # nor the same one twice
    assert not store.set_progress(job.id, 9, 50)
    assert not store.complete(job.id, 9, {"stale": True})
    assert not store.fail(job.id, 9, "x", "stale", final=True)
    after = store.get(job.id)
    assert after is not None
    assert (after.status, after.progress, after.result, after.error_code) == (
        "processing",
        0,
        None,
        None,
    )


def test_a_newer_claim_takes_over_and_fences_the_old_one(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    assert store.start(job.id, token=100, attempt=1) is not None
    assert store.set_progress(job.id, 100, 40)
    taken = store.start(job.id, token=200, attempt=2)  # the lease expired; claimed again
    assert taken is not None and taken.lease_token == 200 and taken.attempts == 2
    assert taken.progress == 0
    assert not store.set_progress(job.id, 100, 90)
    assert not store.complete(job.id, 100, {"by": "old"})
    assert store.complete(job.id, 200, {"by": "new"})
    done = store.get(job.id)
    assert done is not None and done.result == {"by": "new"} and done.status == "completed"
    # a finished job cannot be started, completed or failed again
    assert store.start(job.id, token=300, attempt=3) is None
    assert not store.complete(job.id, 200, {"by": "again"})
    assert not store.fail(job.id, 200, "late", "late", final=True)
    assert store.get(job.id) == done


def test_progress_is_clamped(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    store.start(job.id, 1, 1)
    assert store.set_progress(job.id, 1, 150)
    assert store.get(job.id).progress == 100  # type: ignore[union-attr]
    assert store.set_progress(job.id, 1, -5)
    assert store.get(job.id).progress == 0  # type: ignore[union-attr]


def test_a_result_with_nan_is_refused(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    store.start(job.id, 1, 1)
    with pytest.raises(ValueError):
        store.complete(job.id, 1, {"integratedLufs": float("-inf")})
    assert store.get(job.id).status == "processing"  # type: ignore[union-attr]


# --- failures and retries ---------------------------------------------------------------


def test_a_waiting_retry_reads_queued_with_the_last_error(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    store.start(job.id, 1, 1)
    assert store.fail(job.id, 1, "download_failed", "S3 timed out", final=False)
    waiting = store.get(job.id)
    assert waiting is not None
    assert waiting.status == "queued" and waiting.attempts == 1
    assert waiting.to_api()["error"] == {"code": "download_failed", "message": "S3 timed out"}
    assert waiting.completed_at is None
    second = store.start(job.id, 2, 2)
    assert second is not None and second.status == "processing" and second.attempts == 2
    assert store.fail(job.id, 2, "download_failed", "S3 timed out again", final=True)
    failed = store.get(job.id)
    assert failed is not None
    assert failed.status == "failed" and failed.completed_at is not None
    assert failed.error_message == "S3 timed out again"


def test_retry_requeues_only_failed_jobs(store: JobStore, owner: str) -> None:
    job, _ = store.create(spec(owner))
    with pytest.raises(JobNotRetryable):
        store.retry(job.id, owner)
    store.start(job.id, 5, 1)
    store.fail(job.id, 5, "bad_audio", "not audio", final=True)
    with pytest.raises(JobNotFound):
        store.retry(str(uuid.uuid4()), owner)
    with pytest.raises(JobNotFound):
        store.retry("garbage", owner)
    again = store.retry(job.id, owner)
    assert again.status == "queued" and again.attempts == 0 and again.error_code is None
    assert again.started_at is None and again.completed_at is None
    assert "error" not in again.to_api()
    assert store.start(job.id, 4, 1) is None  # the failed run's older token stays fenced out
    assert store.start(job.id, 6, 1) is not None
    assert store.complete(job.id, 6, {"ok": True})
    with pytest.raises(JobNotRetryable):
        store.retry(job.id, owner)


def test_retries_of_one_job_are_capped(store: JobStore, owner: str) -> None:
    """Issue 13: 20 retries in a row of one failing job were all accepted."""
    job, _ = store.create(spec(owner))
    token = 10
    for n in range(MAX_RETRIES + 1):
        token += 1
        assert store.start(job.id, token, 1) is not None
        assert store.fail(job.id, token, "bad_audio", "not audio", final=True)
        if n < MAX_RETRIES:
            assert store.retry(job.id, owner).status == "queued"
    with pytest.raises(RetryLimit) as info:
        store.retry(job.id, owner)
    assert info.value.code == "retry_limit" and isinstance(info.value, JobNotRetryable)
    failed = store.get(job.id, owner)
    assert failed is not None and failed.status == "failed"  # the refusal changed nothing
    other, _ = store.create(spec(owner))  # the cap is per job
    assert store.start(other.id, 1, 1) and store.fail(other.id, 1, "x", "y", final=True)
    assert store.retry(other.id, owner).status == "queued"


def test_the_token_floor_is_the_largest_token_postgres_accepted(
    store: JobStore, database_url: str, owner: str
) -> None:
    """Issue 13: the queue's token floor survives in the system of record, deletes too."""
    floor = store.token_floor()
    job, _ = store.create(spec(owner))
    high = max(floor, 1_800_000_000_000_000) + 1_000_000
    assert store.start(job.id, high, 1) is not None
    assert store.token_floor() == high
    second, _ = store.create(spec(owner))
    assert store.start(second.id, high - 5, 1) is not None
    assert store.token_floor() == high  # never lowered by a smaller token
    admin = connect(database_url, store.schema)
    try:
        admin.run("DELETE FROM jobs WHERE id = CAST(:id AS uuid)", id=job.id)
    finally:
        admin.close()
    assert store.get(job.id) is None
    assert store.token_floor() == high  # a deleted job's token still counts


def test_fail_without_token_only_matches_a_never_started_job(store: JobStore, owner: str) -> None:
    fresh, _ = store.create(spec(owner))
    assert store.fail(fresh.id, None, "stalled", "given up", final=True)
    assert store.get(fresh.id).status == "failed"  # type: ignore[union-attr]
    started, _ = store.create(spec(owner))
    store.start(started.id, 3, 1)
    assert not store.fail(started.id, None, "stalled", "given up", final=True)


# --- sweeper support, counts, keys, connections -------------------------------------------


def test_reconcile_candidates_are_old_unfinished_jobs(store: JobStore, owner: str) -> None:
    queued, _ = store.create(spec(owner))
    processing, _ = store.create(spec(owner))
    store.start(processing.id, 1, 1)
    done, _ = store.create(spec(owner))
    store.start(done.id, 1, 1)
    store.complete(done.id, 1, {})
    old = {j.id for j in store.reconcile_candidates(min_age_seconds=0, limit=500)}
    assert {queued.id, processing.id} <= old and done.id not in old
    young = {j.id for j in store.reconcile_candidates(min_age_seconds=3600)}
    assert not young & {queued.id, processing.id}


def test_counts_per_status(store: JobStore, owner: str) -> None:
    before = store.counts()
    assert set(before) == {  # DESIGN
        "queued",
        "processing",
        "completed",
        "failed",
        "cancelled",
        "expired",
    }
    a, _ = store.create(spec(owner))
    b, _ = store.create(spec(owner))
    store.start(b.id, 1, 1)
    store.fail(b.id, 1, "bad_audio", "x", final=True)
    after = store.counts()
    assert after["queued"] == before["queued"] + 1
    assert after["failed"] == before["failed"] + 1
    assert store.get(a.id) is not None


def test_api_keys_store_only_a_hash(store: JobStore, database_url: str, owner: str) -> None:
    key = store.create_api_key(owner)
    assert store.owner_for_key(key) == owner
    assert store.owner_for_key(key + "x") is None
    assert store.owner_for_key("") is None
    assert store.create_api_key(owner, key) == key  # re-registering is a no-op
    with pytest.raises(ValueError, match="another owner"):
        store.create_api_key(owner + "-b", key)
    conn = connect(database_url, store.schema)
    rows = conn.run("SELECT key_hash, owner FROM api_keys WHERE owner = :o", o=owner)
    conn.close()
    assert rows == [[hash_key(key), owner]]
    fixed = store.create_api_key(owner, f"dev-key-of-{owner}")  # 24+ characters
    assert fixed == f"dev-key-of-{owner}" and store.owner_for_key(fixed) == owner
    with pytest.raises(ValueError, match="at least 24"):
        store.create_api_key(owner, "dev-key")


def test_threads_get_their_own_connections(store: JobStore, owner: str) -> None:
    barrier = threading.Barrier(5)
    seen: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                job, _ = store.create(spec(owner))
                found = store.get(job.id, owner)
                assert found is not None
                seen.append(found.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(set(seen)) == 25
    assert len(store.list_for_owner(owner, limit=100)) == 25


def test_a_dropped_connection_is_reopened(store: JobStore, database_url: str, owner: str) -> None:
    job, _ = store.create(spec(owner))
    pid = store._rows("SELECT pg_backend_pid() AS pid")[0]["pid"]
    admin = connect(database_url)
    assert admin.run("SELECT pg_terminate_backend(:pid)", pid=pid) == [[True]]
    admin.close()
    assert store.get(job.id) == job
    assert store.ping()


def test_short_lived_threads_do_not_each_keep_a_connection(
    database_url: str, migrated: str, owner: str
) -> None:
    """A server that starts a thread per request (chalice local) must not leak one
    connection per thread it ever ran: Postgres answers "too many clients"."""
    name = f"sc-pool-{uuid.uuid4().hex[:8]}"
    store = JobStore(database_url, migrated, max_idle=2, application_name=name)
    admin = connect(database_url)
    try:
        for _ in range(30):
            thread = threading.Thread(target=lambda: store.list_for_owner(owner))
            thread.start()
            thread.join(timeout=30)
        open_now = admin.run(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n", n=name
        )[0][0]
        assert 1 <= open_now <= 2
        store.close()
        wait_until(
            lambda: (
                admin.run(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n", n=name
                )[0][0]
                == 0
            ),
            what="the store's connections to close",
        )
    finally:
        admin.close()


def test_a_failed_statement_keeps_its_connection_usable(store: JobStore) -> None:
    with pytest.raises(pg8000.exceptions.DatabaseError):
        store._rows("SELECT no_such_column FROM jobs")
    assert store.ping()


def test_ping_is_false_when_postgres_is_unreachable() -> None:
    store = JobStore("postgresql://postgres@127.0.0.1:1/none", timeout=2)
    assert not store.ping()


def test_many_clients_at_once_never_see_each_others_rows(store: JobStore) -> None:
    """Issue 13: through PgBouncer (transaction pooling, pool 10), 48 clients at once
    each create, read back, start and complete their own jobs. Statements outside a
    transaction lost their unnamed prepared statement to another server connection
    ("unnamed prepared statement does not exist", "bind message supplies ...") or
    read another query's rows; every unit of work is one transaction now."""
    workers, per_worker = 48, 4
    barrier = threading.Barrier(workers)
    errors: list[str] = []
    done: list[str] = []

    def work(n: int) -> None:
        owner = f"storm-{n}-{uuid.uuid4().hex[:6]}"
        try:
            barrier.wait(timeout=30)
            for i in range(per_worker):
                job, created = store.create(spec(owner, file_key=f"uploads/s/{n}/{i}.wav"))
                assert created and job.owner == owner and job.file_key.endswith(f"/{n}/{i}.wav")
                assert store.get(job.id, owner) == job
                started = store.start(job.id, token=1000 + i, attempt=1)
                assert started is not None and started.id == job.id
                assert store.complete(job.id, 1000 + i, {"n": n, "i": i})
                finished = store.get(job.id, owner)
                assert finished is not None and finished.result == {"n": n, "i": i}
                done.append(job.id)
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(set(done)) == workers * per_worker
