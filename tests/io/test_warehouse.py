"""Warehouse sources: the demo org through each replication tool's layout in real PostgreSQL and DuckDB."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import renewforecast as rf
from _postgres import PG_PASSWORD, find_postgres_bin
from renewforecast.book import table_fingerprint
from renewforecast.io.warehouse import REPLICA_LAYOUTS, WarehouseError, read_replica

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


def test_result_tables_are_all_or_nothing_and_idempotent(target):
    url, schema = target
    if schema:
        _execute(url, sa.schema.CreateSchema(schema))
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

    # a failure part-way (text into a DOUBLE column, refused by the database) changes nothing
    broken = scores.assign(**{"P(renew)": ["high", "low", "mid"]})
    forecast = pd.DataFrame({"month": ["2026-07"], "arr": [1.0]})
    before = _rows(url, schema, "scores"), _rows(url, schema, "kpis")
    with pytest.raises(WarehouseError, match="nothing was written"):
        rf.write_result_tables(
            url,
            {"forecast": forecast, "kpis": kpis.assign(value=[0.0, 0.0]), "scores": broken},
            schema=schema,
            run_id="r3",
        )
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
