"""An installation with development mode off and the vendor's own key pair: real worker, Redis, store.

The vendor is played by the development license server started with a key pair
generated for the test, as the vendor's would be; nothing trusts the development key.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from licenseserver.signing import write_new_key_pair
from tests.support.license_server import key_entry, license_server
from tests.support.manager import Manager, celery_client
from tests.support.servers import PostgresServer, RedisServer
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

FIVE = "AVTR-PROD-ACTV-0005"


def test_with_development_mode_off_and_the_vendors_own_key_pair_licenses_are_added_and_refreshed(
    postgres: PostgresServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    redis_service.flush()
    store_engine: Engine = migrated_engine(postgres.create_database("production_mode"))
    pair = tmp_path / "vendor-key-pair.json"
    vendor_key = write_new_key_pair(pair).public_key
    with license_server([key_entry(FIVE, 5)], key_pair=pair) as vendor:
        env = avtor_environment(
            redis_url=redis_service.url,
            database_url=store_engine.url.render_as_string(hide_password=False),
            development_mode="0",
            license_server_url=vendor.url,
            license_server_public_key=vendor_key,
            license_server_timeout="2s",
        )
        worker = CeleryProcess.worker(env, "production", queues="avtor.admin", concurrency=1).start()
        try:
            production = Manager(celery_client(redis_service.url), worker)
            actor = "ada (e2e)"
            assert production.call("avtor.admin.accept_eula", accepted_by="Ada Admin", actor=actor)["ok"]
            added = production.call("avtor.admin.add_license", license_key=FIVE, actor=actor)
            assert added["ok"], added
            vendor.put_key(FIVE, seats=7)
            license_id = added["license"]["id"]
            refreshed = production.call("avtor.admin.refresh_license", license_id=license_id, actor=actor)
            assert (refreshed["outcome"], refreshed["seats_licensed"]) == ("verified", 7)
            assert "DEVELOPMENT MODE" not in worker.log()
        finally:
            worker.cleanup()
            store_engine.dispose()
