"""Talks to `medallion serve` as real Postgres clients do, for the Direct Query tests.

    python pg_client_check.py MODE PORT [ARGS...]

Modes print one JSON object per line:
  params PORT           a parameterised query (extended protocol) with text and binary results
  fresh PORT            counts silver.users (simple, and a server-side prepared statement),
                        waits for a line on stdin, counts again on the same connection
  refused PORT DIR      every write statement class over the extended protocol -> SQLSTATE
  sessions PORT         a SET on one connection, SHOW on it and on a second connection
  bad-proof PORT        SCRAM-SHA-256 with a wrong proof over a raw socket -> SQLSTATE
  limit PORT            a second connection while a first one is open (server allows one)

The password comes from MEDALLION_PASSWORD (as for the server); the user is `medallion`.
"""

import base64
import json
import os
import socket
import struct
import sys

import psycopg


def connect(port):
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="medallion",
        dbname="medallion",
        password=os.environ.get("MEDALLION_PASSWORD", ""),
        connect_timeout=10,
        autocommit=True,
    )


def out(obj):
    print(json.dumps(obj, default=str), flush=True)


def params(port):
    with connect(port) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT user_id, first_name FROM silver.users WHERE user_id >= %s "
                "ORDER BY user_id LIMIT %s",
                (0, 5),
            )
            text_rows = cur.fetchall()
        with conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT count(*) AS n, max(user_id) AS top, max(user_birth_date) AS born "
                "FROM silver.users WHERE gender = %s",
                ("Female",),
            )
            row = cur.fetchone()
            binary = [c.name for c in cur.description], [type(v).__name__ for v in row], row
    out({"text_rows": text_rows, "binary": binary})


def fresh(port):
    query = "SELECT count(*) FROM silver.users"
    with connect(port) as conn:
        before = conn.execute(query).fetchone()[0]
        prepared_before = conn.execute(query + " WHERE user_id >= %s", (0,), prepare=True).fetchone()[0]
        out({"before": before, "prepared_before": prepared_before})
        sys.stdin.readline()
        after = conn.execute(query).fetchone()[0]
        prepared_after = conn.execute(query + " WHERE user_id >= %s", (0,), prepare=True).fetchone()[0]
        out({"after": after, "prepared_after": prepared_after})


def refused(port, scratch):
    statements = [
        f"CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{scratch}/x.csv'",
        "CREATE TABLE t AS SELECT 1 AS a",
        "INSERT INTO silver.users (user_id) VALUES (1)",
        f"COPY (SELECT 1) TO '{scratch}/copy_ext.csv'",
        "DROP TABLE silver.users",
        "DELETE FROM silver.users",
        "UPDATE silver.users SET gender = 'X'",
    ]
    codes = {}
    with connect(port) as conn:
        for s in statements:
            try:
                conn.execute(s, prepare=False)
                codes[s] = None
            except psycopg.Error as e:
                codes[s] = e.sqlstate
        # the connection still serves
        codes["after"] = conn.execute("SELECT 1").fetchone()[0]
    out(codes)


def sessions(port):
    with connect(port) as a, connect(port) as b:
        a.execute("SET datafusion.execution.batch_size = 7")
        show = (
            "SELECT value FROM information_schema.df_settings "
            "WHERE name = 'datafusion.execution.batch_size'"
        )
        out({"a": a.execute(show).fetchall(), "b": b.execute(show).fetchall()})


def limit(port):
    with connect(port) as first:
        first.execute("SELECT 1")
        try:
            connect(port).close()
            second = None
        except psycopg.OperationalError as e:
            second = str(e)
        still = first.execute("SELECT 2").fetchone()[0]
    out({"second": second, "first_still": still})


def message(sock):
    head = b""
    while len(head) < 5:
        head += sock.recv(5 - len(head))
    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
    body = b""
    while len(body) < length - 4:
        body += sock.recv(length - 4 - len(body))
    return kind, body


def bad_proof(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    params_ = b"user\0medallion\0database\0medallion\0\0"
    sock.sendall(struct.pack("!II", 8 + len(params_), 196608) + params_)
    kind, body = message(sock)
    assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 10, (kind, body)  # SASL
    first = b"n,,n=medallion,r=clientnonce123"
    payload = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
    sock.sendall(b"p" + struct.pack("!I", 4 + len(payload)) + payload)
    kind, body = message(sock)
    server_first = body[4:].decode()
    nonce = dict(kv.split("=", 1) for kv in server_first.split(","))["r"]
    proof = base64.b64encode(b"\0" * 32).decode()
    final = f"c=biws,r={nonce},p={proof}".encode()
    sock.sendall(b"p" + struct.pack("!I", 4 + len(final)) + final)
    kind, body = message(sock)
    fields = {f[:1].decode(): f[1:].decode() for f in body.split(b"\0") if f}
    out({"kind": kind.decode(), "code": fields.get("C"), "message": fields.get("M")})


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "params":
        params(port)
    elif mode == "fresh":
        fresh(port)
    elif mode == "refused":
        refused(port, sys.argv[3])
    elif mode == "sessions":
        sessions(port)
    elif mode == "bad-proof":
        bad_proof(port)
    elif mode == "limit":
        limit(port)
    else:
        sys.exit(f"unknown mode {mode}")
