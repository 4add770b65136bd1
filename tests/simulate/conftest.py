from tests.hall_server.conftest import db_url  # noqa: F401
