"""Queries a running Spanlake over Arrow Flight SQL with the ADBC driver, as a notebook or BI tool
would, and prints the span count as JSON.

Usage: flight_sql.py grpc://127.0.0.1:50051 [tenant]
Needs: pip install adbc-driver-flightsql adbc-driver-manager pyarrow
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql

uri = sys.argv[1]
db_kwargs = {}
if len(sys.argv) > 2:
    # Sent as the x-scope-orgid header on every call, as Grafana and Tempo clients do.
    db_kwargs[adbc_driver_flightsql.DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "x-scope-orgid"] = (
        sys.argv[2]
    )

with flight_sql.connect(uri, db_kwargs=db_kwargs, autocommit=True) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM spans")
        table = cur.fetch_arrow_table()

print(json.dumps({"n": table.column("n")[0].as_py()}))
