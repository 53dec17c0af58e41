import pytest

from gateway.storage import StorageError, connect, normalize_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres@127.0.0.1/test", "postgresql+psycopg2://postgres@127.0.0.1/test"),
        ("postgres://u:p@h:5433/db", "postgresql+psycopg2://u:p@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:///data/x.db", "sqlite:///data/x.db"),
    ],
)
def test_plain_postgres_urls_use_psycopg2(url, expected):
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["", "nonsense", "mysql://root@localhost/db", "oracle://x"])
def test_bad_urls_are_rejected_with_a_message(url):
    with pytest.raises(StorageError, match="URL|scheme"):
        normalize_url(url)


def test_unreachable_server_gives_a_readable_error():
    with pytest.raises(StorageError, match="cannot connect"):
        connect("postgresql://nobody@127.0.0.1:1/none")


def test_missing_sqlite_file_is_not_created_by_readers(tmp_path):
    with pytest.raises(StorageError, match="recsys data synth"):
        connect(f"sqlite:///{tmp_path}/absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_create_makes_a_missing_postgres_database(pg_url):
    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL

    url = pg_url + "_made"  # a database that does not exist yet
    with pytest.raises(StorageError, match="does not exist"):
        connect(url)
    engine = connect(url, create=True)
    engine.dispose()
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()
