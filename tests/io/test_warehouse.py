"""Warehouse sources: the demo org through each replication tool's layout in real PostgreSQL and DuckDB."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import socket
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import renewforecast as rf
from _postgres import PG_PASSWORD, find_postgres_bin
from renewforecast.book import table_fingerprint
from renewforecast.io.warehouse import REPLICA_LAYOUTS, WarehouseError, masked_url, read_replica, url_secrets

LAYOUTS = ("fivetran", "airbyte", "stitch")
DELETED = {"Contract": 3, "SBQQ__Subscription__c": 2, "Opportunity": 2, "Account": 1, "spend": 2}
#: Each canonical table's key: the order the warehouse reader gives rows in.
KEYS = {
    "accounts": ["account_id"],
    "products": ["product_id"],
    "contracts": ["contract_id"],
    "subscriptions": ["subscription_id"],
    "opportunities": ["opportunity_id"],
    "opportunity_lines": ["line_id"],
    "schedules": ["schedule_id"],
    "opportunity_history": ["history_id"],
    "spend": ["month", "channel"],
    "signals": ["account_id", "month"],
    "fx_rates": ["currency", "start_date"],
}


def _ordered_copy(src: Path, dest: Path) -> Path:
    """The export with each file's rows in Id order (spend by month, channel; signals by account, month).

    A database keeps no row order, so the reader orders rows by key; the
    same rows in the same order in files must give the very same Book.
    """
    shutil.copytree(src, dest)
    for path in dest.glob("*.csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "Id" in frame:
            key = ["Id"]
        else:
            key = {"spend": ["month", "channel"], "signals": ["account_id", "month"]}.get(path.stem, ["IsoCode"])
        order = sorted(range(len(frame)), key=lambda i: tuple(frame[k].iat[i] for k in key))
        frame.iloc[order].to_csv(path, index=False, lineterminator="\n")
    return dest


@pytest.fixture(scope="module")
def ordered_book(demo_org, tmp_path_factory) -> rf.Book:
    return rf.load_book(_ordered_copy(demo_org.path, tmp_path_factory.mktemp("ordered") / "org"))


@pytest.fixture(params=["postgresql", "duckdb"])
def target(request, tmp_path) -> tuple[str, str | None]:
    """(URL, schema): a fresh schema of the session's PostgreSQL, or a new DuckDB file."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url"), f"s_{uuid.uuid4().hex[:10]}"
    return f"duckdb:///{tmp_path / 'org.duckdb'}", None


def _execute(url: str, *statements) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


def _table(name: str, schema: str | None, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns), schema=schema)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_demo_org_round_trips_without_its_deleted_rows(demo_org, demo_book, ordered_book, target, layout):
    url, schema = target
    written = rf.write_replica(demo_org.path, url, schema=schema, layout=layout, deleted=DELETED)
    contract_table = REPLICA_LAYOUTS[layout].table("Contract")
    assert written.rows[contract_table] == len(demo_book.contracts) + 3

    book = rf.load_book(url, schema=schema)  # layout told from the tables

    # the CSV load's fingerprint: the same records, whatever order each source keeps them in
    assert book.fingerprint == demo_book.fingerprint == ordered_book.fingerprint
    # the same content as the export read as it is, whatever the order
    for name, frame in demo_book.tables.items():
        resorted = frame.sort_values(KEYS[name], kind="stable").reset_index(drop=True)
        assert table_fingerprint(resorted) == table_fingerprint(book.tables[name]), name
    deleted_contracts = set(written.deleted_ids[contract_table])
    assert len(deleted_contracts) == 3
    assert deleted_contracts.isdisjoint(book.contracts["contract_id"])
    sub_table = REPLICA_LAYOUTS[layout].table("SBQQ__Subscription__c")
    assert set(written.deleted_ids[sub_table]).isdisjoint(book.subscriptions["subscription_id"])
    assert len(book.spend) == len(demo_book.spend)  # its 2 deleted copies left out
    assert read_replica(url, schema=schema).layout.name == layout


def test_explicit_layout_hand_made_lowercase_copy_and_views(demo_org, demo_book, tmp_path):
    url = f"duckdb:///{tmp_path / 'plain.duckdb'}"
    written = rf.write_replica(demo_org.path, url, layout="lowercase", deleted={"Contract": 2})
    assert rf.load_book(url, layout="lowercase").fingerprint == demo_book.fingerprint
    assert rf.load_book(url).fingerprint == demo_book.fingerprint
    # views over the tables read the same (a schema of staging views)
    _execute(
        url,
        sa.text("CREATE SCHEMA staging"),
        *(sa.text(f"CREATE VIEW staging.{t} AS SELECT * FROM main.{t}") for t in written.rows),
    )
    assert rf.load_book(url, schema="staging").fingerprint == demo_book.fingerprint


def test_broken_values_name_the_table_the_id_and_the_column(demo_org, target):
    url, schema = target
    rf.write_replica(demo_org.path, url, schema=schema, layout="fivetran")
    subs = _table("sbqq_subscription_c", schema, "id", "sbqq_net_price_c")
    contracts = _table("contract", schema, "id", "account_id", "start_date")
    lines = _table("opportunity_line_item", schema, "id", "unit_price")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        sub_id = conn.execute(sa.select(subs.c.id).order_by(subs.c.id).limit(1)).scalar_one()
        c1, c2 = conn.execute(sa.select(contracts.c.id).order_by(contracts.c.id).limit(2)).scalars()
        line_id = conn.execute(sa.select(lines.c.id).order_by(lines.c.id).limit(1)).scalar_one()
    engine.dispose()
    _execute(
        url,
        sa.update(subs).where(subs.c.id == sub_id).values(sbqq_net_price_c=float("nan")),
        sa.update(contracts).where(contracts.c.id == c1).values(account_id=None),
        sa.update(contracts).where(contracts.c.id == c2).values(start_date=dt.date(1900, 1, 1)),
        sa.update(lines).where(lines.c.id == line_id).values(unit_price=-5.0),
    )

    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(url, schema=schema)

    found = {(p.file, p.record_id, p.column, p.rule) for p in info.value.problems}
    assert ("sbqq_subscription_c", sub_id, "sbqq_net_price_c", "not_finite") in found
    assert ("contract", c1, "account_id", "missing_value") in found
    assert ("contract", c2, "start_date", "date_out_of_window") in found
    assert ("opportunity_line_item", line_id, "unit_price", "negative_price") in found
    text = str(info.value)
    assert f"sbqq_subscription_c line 1 [id {sub_id}] column sbqq_net_price_c" in text  # first in Id order


def test_quarantine_sets_a_broken_row_aside_naming_its_table(demo_org, demo_book, tmp_path):
    url = f"duckdb:///{tmp_path / 'org.duckdb'}"
    rf.write_replica(demo_org.path, url, layout="fivetran")
    contracts = _table("contract", None, "id", "start_date")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        cid = conn.execute(sa.select(contracts.c.id).order_by(contracts.c.id).limit(1)).scalar_one()
    engine.dispose()
    _execute(url, sa.update(contracts).where(contracts.c.id == cid).values(start_date=None))

    book = rf.load_book(url, on_error="quarantine")

    entry = book.quarantine[book.quarantine["record_id"] == cid].iloc[0]
    assert (entry["file"], entry["column"], entry["line"]) == ("contract", "start_date", 1)
    assert cid not in set(book.contracts["contract_id"])
    assert len(book.contracts) < len(demo_book.contracts)


def test_missing_required_table_names_the_schema_and_the_tables_found(demo_org, target):
    url, schema = target
    rf.write_replica(demo_org.path, url, schema=schema, layout="airbyte")
    _execute(url, sa.text(f"DROP TABLE {schema + '.' if schema else ''}contract"))

    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(url, schema=schema)

    (problem,) = [p for p in info.value.problems if p.rule == "missing_table"]
    assert problem.file == "contract"
    assert (f"schema {schema}" if schema else "the default schema") in problem.message
    assert "sbqq__subscription__c" in problem.message and "opportunitylineitem" in problem.message


def test_no_replicated_objects_is_a_clear_error(tmp_path):
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    _execute(url, sa.text("CREATE TABLE unrelated (x INTEGER)"))
    with pytest.raises(WarehouseError, match=r"No replicated Salesforce objects found.*tables found: unrelated"):
        rf.load_book(url)
    with pytest.raises(WarehouseError, match="does not exist"):
        rf.load_book(f"duckdb:///{tmp_path / 'absent.duckdb'}")
    assert not (tmp_path / "absent.duckdb").exists()


def test_the_password_never_appears(demo_org, postgres_url):
    schema = f"s_{uuid.uuid4().hex[:10]}"
    rf.write_replica(demo_org.path, postgres_url, schema=schema, layout="stitch", deleted={"Contract": 1})
    book = rf.load_book(postgres_url, schema=schema)
    assert PG_PASSWORD not in book.source
    assert book.source.startswith("postgresql+psycopg://postgres:***@127.0.0.1:")
    assert PG_PASSWORD not in book.warnings.to_csv()
    # a URL object (its password set from the environment, say) reads the same
    as_object = rf.load_book(sa.make_url(postgres_url), schema=schema)
    assert as_object.fingerprint == book.fingerprint and as_object.source == book.source

    messages = []
    _execute(postgres_url, sa.text(f"DROP TABLE {schema}.sbqq__subscription__c"))
    with pytest.raises(rf.BookValidationError) as info:
        rf.load_book(postgres_url, schema=schema)
    messages.append(str(info.value))
    with pytest.raises(WarehouseError) as info:
        rf.load_book(postgres_url, schema="no_such_schema")
    messages.append(str(info.value))
    wrong = postgres_url.replace(PG_PASSWORD, PG_PASSWORD + "x")
    with pytest.raises(WarehouseError) as info:
        rf.load_book(wrong, schema=schema)
    messages.append(str(info.value))
    with pytest.raises(WarehouseError) as info:
        rf.write_result_tables(wrong, {"scores": pd.DataFrame({"x": [1.0]})}, run_id="r1")
    messages.append(str(info.value))
    assert "password authentication failed" in messages[2]
    for message in messages:
        assert PG_PASSWORD not in message, message
        assert "***" in message or "127.0.0.1" in message


def test_reading_never_writes(demo_org, tmp_path):
    db = tmp_path / "org.duckdb"
    rf.write_replica(demo_org.path, f"duckdb:///{db}", layout="fivetran", deleted={"Contract": 2})
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    rf.load_book(f"duckdb:///{db}")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["org.duckdb"]  # no write-ahead log left behind


def _rows(url: str, schema: str | None, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        result = conn.execute(sa.select(sa.text("*")).select_from(sa.table(table, schema=schema)))
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    engine.dispose()
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def _has_table(url: str, schema: str | None, table: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        found = sa.inspect(conn).has_table(table, schema=schema)
    engine.dispose()
    return found


@pytest.fixture(params=["postgresql", "duckdb", "sqlite"])
def results_target(request, tmp_path) -> tuple[str, str | None]:
    """(URL, schema) to write results to: a fresh PostgreSQL schema, a DuckDB file, a SQLite file (stdlib sqlite3)."""
    if request.param == "postgresql":
        url, schema = request.getfixturevalue("postgres_url"), f"s_{uuid.uuid4().hex[:10]}"
        _execute(url, sa.schema.CreateSchema(schema))
        return url, schema
    return f"{request.param}:///{tmp_path / ('results.' + request.param)}", None


def test_result_tables_are_all_or_nothing_and_idempotent(results_target):
    url, schema = results_target
    scores = pd.DataFrame(
        {
            "contract_id": ["800A", "800B", "800C"],
            "P(renew)": [0.9, 0.25, None],
            '=HYPERLINK("x")': ["=1+1", "@SUM(A1)", "plain"],
            "due": pd.to_datetime(["2026-07-01", "2026-08-15", None]),
            "seats": [3, 5, 8],
            "at_risk": [False, True, True],
        }
    )
    kpis = pd.DataFrame({"kpi": ["nrr", "grr"], "value": [1.07, 0.91]})

    assert rf.write_result_tables(url, {"scores": scores, "kpis": kpis}, schema=schema, run_id="r1") == {
        "scores": 3,
        "kpis": 2,
    }
    first = _rows(url, schema, "scores")
    assert list(first.columns) == ["run_id", "contract_id", "p_renew", "hyperlink_x", "due", "seats", "at_risk"]
    assert first["hyperlink_x"].tolist() == ["=1+1", "@SUM(A1)", "plain"]  # text stays text
    assert first["p_renew"].tolist()[:2] == [0.9, 0.25] and pd.isna(first["p_renew"].iloc[2])

    # the same run again replaces its rows; another run adds its own
    rf.write_result_tables(url, {"scores": scores, "kpis": kpis}, schema=schema, run_id="r1")
    assert len(_rows(url, schema, "scores")) == 3
    rf.write_result_tables(url, {"scores": scores.head(1)}, schema=schema, run_id="r2")
    assert _rows(url, schema, "scores")["run_id"].value_counts().to_dict() == {"r1": 3, "r2": 1}
    before = _rows(url, schema, "scores"), _rows(url, schema, "kpis")
    forecast = pd.DataFrame({"month": ["2026-07"], "arr": [1.0]})

    # a frame whose types the existing columns would change (DuckDB rounds 3.5 seats into BIGINT,
    # SQLite stores the text in a DOUBLE column) is refused before anything is written
    changed = scores.assign(seats=[3.5, 5.0, 8.25], **{"P(renew)": ["high", "low", "mid"]})
    with pytest.raises(WarehouseError) as info:
        rf.write_result_tables(
            url,
            {"forecast": forecast, "kpis": kpis.assign(value=[0.0, 0.0]), "scores": changed},
            schema=schema,
            run_id="r3",
        )
    assert info.value.reason == "invalid"
    text = str(info.value)
    assert "nothing was written" in text
    assert "result table scores column seats is BIGINT in the database, the new rows' are" in text
    assert "DOUBLE" in text.split("column seats")[1].split(";")[0]
    assert "result table scores column p_renew is DOUBLE" in text and "TEXT" in text.split("column p_renew")[1]
    assert not _has_table(url, schema, "forecast")
    pd.testing.assert_frame_equal(_rows(url, schema, "kpis"), before[1])
    pd.testing.assert_frame_equal(_rows(url, schema, "scores"), before[0])

    # a failure part-way, refused by the database (a unique index a user put on the table), changes nothing:
    # the table created before it is gone too (on SQLite as well, whose driver would commit CREATE TABLE)
    index_table = f"{schema}.scores" if schema else "scores"
    _execute(url, sa.text(f"CREATE UNIQUE INDEX scores_contract ON {index_table} (run_id, contract_id)"))
    twice = pd.concat([scores.head(1), scores.head(1)], ignore_index=True)
    with pytest.raises(WarehouseError, match="nothing was written") as info:
        rf.write_result_tables(
            url,
            {"forecast": forecast, "kpis": kpis.assign(value=[0.0, 0.0]), "scores": twice},
            schema=schema,
            run_id="r3",
        )
    assert info.value.reason == "refused"
    assert not _has_table(url, schema, "forecast")
    pd.testing.assert_frame_equal(_rows(url, schema, "kpis"), before[1])
    pd.testing.assert_frame_equal(_rows(url, schema, "scores"), before[0])

    # replace starts the table again
    rf.write_result_tables(url, {"scores": scores.head(2)}, schema=schema, run_id="r4", if_exists="replace")
    assert _rows(url, schema, "scores")["run_id"].tolist() == ["r4", "r4"]


def test_result_table_names_must_be_sql_safe(tmp_path):
    url = f"duckdb:///{tmp_path / 'r.duckdb'}"
    with pytest.raises(WarehouseError, match="not SQL-safe"):
        rf.write_result_tables(url, {"scores; drop table x": pd.DataFrame({"a": [1]})}, run_id="r1")
    with pytest.raises(WarehouseError, match="collide"):
        rf.write_result_tables(url, {"s": pd.DataFrame({"A b": [1], "a_b": [2]})}, run_id="r1")
    assert not (tmp_path / "r.duckdb").exists()


def test_missing_postgres_binaries_fail_with_the_package_to_install(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="install the Debian package `postgresql`"):
        find_postgres_bin(search_path=str(tmp_path), roots=(str(tmp_path),))
    assert (find_postgres_bin() / "initdb").exists()


def test_secret_url_parameters_are_masked_and_named():
    url = (
        "snowflake://me:pw-1@acct/db/sch?warehouse=wh&private_key_file=/keys/rsa.p8&private_key_file_pwd=kp-2"
        "&token=tk-3&access_token=at-4&client_secret=cs-5&credentials_base64=cr-6&sslpassword=sp-7&API_KEY=ak-8"
        "&role=analyst"
    )
    assert url_secrets(url) == [
        "password",
        "private_key_file_pwd",
        "token",
        "access_token",
        "client_secret",
        "credentials_base64",
        "sslpassword",
        "API_KEY",
    ]
    shown = masked_url(url)
    for secret in ("pw-1", "kp-2", "tk-3", "at-4", "cs-5", "cr-6", "sp-7", "ak-8"):
        assert secret not in shown
    # what is not a secret stays readable: a key file's path, the warehouse, the role
    assert "warehouse=wh" in shown and "private_key_file=%2Fkeys%2Frsa.p8" in shown and "role=analyst" in shown
    assert "token=***" in shown and shown.startswith("snowflake://me:***@acct/db/sch?")
    assert url_secrets("postgresql+psycopg://me@db/crm?sslmode=require&bypass_cache=1&db_pass=x") == ["db_pass"]
    assert url_secrets(sa.make_url("postgresql+psycopg://me:x@db/crm")) == ["password"]


def test_a_password_in_the_query_string_never_appears(demo_org, postgres_url):
    schema = f"s_{uuid.uuid4().hex[:10]}"
    rf.write_replica(demo_org.path, postgres_url, schema=schema, layout="fivetran")
    # psycopg takes the password as a query parameter too: the URL's userinfo then holds none
    parts = sa.make_url(postgres_url)
    in_query = sa.URL.create(
        parts.drivername, parts.username, None, parts.host, parts.port, parts.database, {"password": PG_PASSWORD}
    )
    text_url = in_query.render_as_string(hide_password=False)
    assert PG_PASSWORD in text_url and url_secrets(text_url) == ["password"]

    book = rf.load_book(text_url, schema=schema)
    assert PG_PASSWORD not in book.source and "password=***" in book.source

    wrong = text_url.replace(PG_PASSWORD, PG_PASSWORD + "x")
    with pytest.raises(WarehouseError) as info:
        rf.load_book(wrong, schema=schema)
    assert info.value.reason == "auth"
    assert PG_PASSWORD not in str(info.value) and "password=***" in str(info.value)


def test_errors_say_why_the_database_could_not_be_used(demo_org, postgres_url, tmp_path):
    good = sa.make_url(postgres_url)
    schema = f"s_{uuid.uuid4().hex[:10]}"
    rf.write_replica(demo_org.path, postgres_url, schema=schema, layout="airbyte")
    frame = {"scores": pd.DataFrame({"x": [1.0]})}
    seen: dict[str, WarehouseError] = {}

    def failure(call) -> WarehouseError:
        with pytest.raises(WarehouseError) as info:
            call()
        return info.value

    wrong = good.set(password=PG_PASSWORD + "x").render_as_string(hide_password=False)
    seen["auth read"] = failure(lambda: rf.load_book(wrong, schema=schema))
    seen["auth write"] = failure(lambda: rf.write_result_tables(wrong, frame, run_id="r1"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = good.set(port=s.getsockname()[1]).render_as_string(hide_password=False)
    seen["unreachable"] = failure(lambda: rf.load_book(closed, schema=schema))
    seen["driver dialect"] = failure(lambda: rf.load_book("nosuchdb://me:pw@host/db"))
    seen["driver dbapi"] = failure(lambda: rf.load_book("mysql+pymysql://me:pw@host/db"))
    # a login without rights on the schema: connected, then refused
    _execute(
        postgres_url,
        sa.text("CREATE ROLE rf_reader LOGIN PASSWORD 'rf-reader-pw'"),
        sa.text(f"GRANT USAGE ON SCHEMA {schema} TO rf_reader"),
    )
    reader = good.set(username="rf_reader", password="rf-reader-pw").render_as_string(hide_password=False)
    seen["refused read"] = failure(lambda: rf.load_book(reader, schema=schema))
    seen["refused write"] = failure(lambda: rf.write_result_tables(reader, frame, schema=schema, run_id="r1"))
    seen["invalid"] = failure(lambda: rf.load_book(postgres_url, schema=schema, layout="nosuchtool"))

    assert {k: e.reason for k, e in seen.items()} == {
        "auth read": "auth",
        "auth write": "auth",
        "unreachable": "unreachable",
        "driver dialect": "driver",
        "driver dbapi": "driver",
        "refused read": "refused",
        "refused write": "refused",
        "invalid": "invalid",
    }
    assert "password authentication failed" in str(seen["auth read"])
    assert "Connection refused" in str(seen["unreachable"])
    assert "permission denied" in str(seen["refused read"])
    for error in seen.values():
        for secret in (PG_PASSWORD, "rf-reader-pw", ":pw@"):
            assert secret not in str(error), str(error)


#: The columns each tool orders a record's appended versions by (docs/data_model.md, *Append-only replicas*).
SEQUENCE = {
    "fivetran": ("_fivetran_synced",),
    "airbyte": ("_airbyte_extracted_at",),
    "stitch": ("_sdc_sequence", "_sdc_batched_at"),
}


def _add_versions(url: str, schema: str | None, layout: str, ids: list[str], *, days: int, **values) -> None:
    """Append a version of each record: a copy of its row with the tool's sequence columns moved ``days`` days."""
    chosen = REPLICA_LAYOUTS[layout]
    name = chosen.table("Contract")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        result = conn.execute(sa.select(sa.text("*")).select_from(sa.table(name, schema=schema)))
        rows = [dict(r._mapping) for r in result if r._mapping["id"] in ids]
        assert len(rows) == len(ids)
        for row in rows:
            for col in SEQUENCE[layout]:
                step = dt.timedelta(days=1) if isinstance(row[col], dt.datetime) else 86_400_000
                row[col] = row[col] + days * step
            row.update(values)
            if layout == "airbyte":
                row["_airbyte_raw_id"] = str(uuid.uuid4())
        table = sa.table(name, *(sa.column(c) for c in rows[0]), schema=schema)
        conn.execute(sa.insert(table), rows)
    engine.dispose()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_append_only_replicas_keep_each_records_latest_version(demo_org, demo_book, target, layout):
    url, schema = target
    written = rf.write_replica(demo_org.path, url, schema=schema, layout=layout, deleted={"Contract": 1})
    chosen = REPLICA_LAYOUTS[layout]
    flags = dict.fromkeys(chosen.deleted, False)
    ids = sorted(demo_book.contracts["contract_id"])[:3]
    # older versions with other values; one of them was deleted then, and is not now
    _add_versions(url, schema, layout, ids[:2], days=-1, status="Draft", **flags)
    _add_versions(url, schema, layout, ids[2:], days=-1, status="Draft", **{**flags, chosen.deleted[0]: True})
    # a record whose last version is deleted, though its earlier one was not flagged
    (gone,) = written.deleted_ids[chosen.table("Contract")]
    _add_versions(url, schema, layout, [gone], days=-1, **flags)

    book = rf.load_book(url, schema=schema)

    assert book.fingerprint == demo_book.fingerprint
    snap = read_replica(url, schema=schema)
    assert (snap.tables["Contract"].superseded, snap.tables["Contract"].deleted) == (4, 1)
    assert gone not in set(book.contracts["contract_id"])
    assert set(book.contracts.loc[book.contracts["contract_id"].isin(ids), "status"]) != {"Draft"}


def test_equal_sequence_values_are_ordered_by_systemmodstamp(demo_org, demo_book, tmp_path):
    url = f"duckdb:///{tmp_path / 'org.duckdb'}"
    rf.write_replica(demo_org.path, url, layout="stitch")
    stamp = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    _execute(
        url,
        sa.text("ALTER TABLE contract ADD COLUMN systemmodstamp TIMESTAMPTZ"),
        sa.update(_table("contract", None, "systemmodstamp")).values(systemmodstamp=stamp),
    )
    first = sorted(demo_book.contracts["contract_id"])[0]
    # a version loaded in the same batch with the same sequence, but modified earlier in Salesforce
    # (its status sorts last, so a tie broken by the row's text alone would pick it)
    _add_versions(
        url, None, "stitch", [first], days=0, status="~superseded", systemmodstamp=stamp - dt.timedelta(hours=1)
    )

    book = rf.load_book(url)

    assert book.fingerprint == demo_book.fingerprint
    assert read_replica(url).tables["Contract"].superseded == 1
