"""A stand-in for Supabase's API in front of PostgREST, for RPC calls only: ``POST /rest/v1/rpc/<function>``.

PostgREST itself was not available to the tests. This server does, for one function call, what
Supabase's API gateway and PostgREST do:

- The key: ``Authorization: Bearer <key>``, else the ``apikey`` header (the gateway refuses a request
  with neither). A JWT is verified with the project's HS256 secret and its ``exp``. Opaque keys
  (``sb_secret_...``, ``sb_publishable_...``) are swapped for a JWT of their role, as the gateway does.
- The database: logged in as ``authenticator``, one transaction per request that runs
  ``set_config('role', <role claim>, true)`` and ``set_config('request.jwt.claims', <claims>, true)``
  (plus ``request.method`` and ``request.path``), then calls the function with the JSON body's keys
  as named arguments, typed by the function's signature (PostgREST's schema cache), through
  ``jsonb_to_record`` as PostgREST does.
- The answer: 200 and the result as JSON (204 for a void function); errors as
  ``{"code", "message", "details", "hint"}`` with PostgREST's statuses: 401 for a missing or bad key
  (PGRST301, PGRST303), 404 for an unknown function (PGRST202), 401 for ``anon`` and 403 for other
  roles on permission denied (42501), 400 for bad input, 409 for conflicts, 500 otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import psycopg
import psycopg.errors
from psycopg import sql

SECRET = "llmtally-test-jwt-secret-at-least-32-characters-long"
SECRET_KEY = "sb_secret_llmtally_test_0123456789"
PUBLISHABLE_KEY = "sb_publishable_llmtally_test_0123456789"


def make_jwt(
    role: str, *, secret: str = SECRET, expires_in: dt.timedelta = dt.timedelta(hours=1), **claims: Any
) -> str:
    """A Supabase-style JWT (HS256) for ``role``, like the project's anon and service_role keys."""
    now = dt.datetime.now(dt.UTC)
    payload = {"iss": "supabase", "role": role, "iat": now, "exp": now + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def _status(sqlstate: str, role: str) -> int:
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    if sqlstate in {"23503", "23505"}:
        return 409
    if sqlstate.startswith(("22", "23", "P0")):
        return 400
    if sqlstate in {"42883", "42P01"}:
        return 404
    return 500


class PostgrestStandIn:
    """The server, on 127.0.0.1 (a free port unless given), calling functions in ``database_url``'s schema public."""

    def __init__(self, database_url: str, *, port: int = 0) -> None:
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        info.pop("password", None)
        info["user"] = "authenticator"
        self.dsn = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
        self.requests: list[tuple[str, str, int]] = []  # (function, role, status) of every request
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> PostgrestStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b"{}"
                status, answer = standin.handle(self.path, dict(self.headers.items()), body)
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="postgrest-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- one request -------------------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        lower = {k.lower(): v for k, v in headers.items()}
        function = path.split("?")[0].removeprefix("/rest/v1/rpc/")
        claims, problem = self._claims(lower)
        role = str(claims.get("role", "anon")) if claims else "anon"
        if problem is not None:
            status, answer = problem
        elif not path.startswith("/rest/v1/rpc/") or not function:
            status, answer = 404, _error("PGRST125", f"Invalid path specified in request URL: {path}")
        else:
            status, answer = self._call(function, role, claims or {}, body)
        self.requests.append((function, role, status))
        return status, answer

    def _claims(self, headers: dict[str, str]) -> tuple[dict[str, Any] | None, tuple[int, Any] | None]:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("apikey", "")
        if not token:
            return None, (401, {"message": "No API key found in request", "hint": "No `apikey` request header."})
        if token == SECRET_KEY:
            token = make_jwt("service_role")
        elif token == PUBLISHABLE_KEY:
            token = make_jwt("anon")
        elif token.startswith(("sb_secret_", "sb_publishable_")):
            return None, (401, {"message": "Invalid API key", "hint": "Double check your Supabase API key."})
        try:
            return jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_aud": False}), None
        except jwt.ExpiredSignatureError:
            return None, (401, _error("PGRST303", "JWT expired"))
        except jwt.InvalidTokenError as exc:
            return None, (401, _error("PGRST301", f"JWSError {type(exc).__name__}: {exc}"))

    def _call(self, function: str, role: str, claims: dict[str, Any], body: bytes) -> tuple[int, Any]:
        try:
            args = json.loads(body or b"{}")
        except ValueError as exc:
            return 400, _error("PGRST102", f"Empty or invalid json: {exc}")
        if not isinstance(args, dict):
            return 400, _error("PGRST102", "the body of an RPC call is a JSON object of named arguments")
        with psycopg.connect(self.dsn, prepare_threshold=None) as conn:
            signature = self._signature(conn, function, set(args))
            if signature is None:
                names = ", ".join(sorted(args))
                return 404, _error(
                    "PGRST202",
                    f"Could not find the function public.{function}({names}) in the schema cache",
                    hint="Perhaps you meant to call another function",
                )
            names, types, returns_void = signature
            fn = sql.Identifier("public", function)
            result = sql.SQL("{}({})" if returns_void else "to_jsonb({}({}))")
            if names:
                record = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in zip(names, types, strict=True)
                )
                call = sql.SQL("select {result} from jsonb_to_record(%s::jsonb) as _({record})").format(
                    result=result.format(
                        fn, sql.SQL(", ").join(sql.SQL("{0} := _.{0}").format(sql.Identifier(n)) for n in names)
                    ),
                    record=record,
                )
            else:
                call = sql.SQL("select {result} where %s::jsonb is not null").format(
                    result=result.format(fn, sql.SQL(""))
                )
            try:
                with conn.transaction():
                    conn.execute(
                        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
                        " set_config('request.method', 'POST', true), set_config('request.path', %s, true)",
                        (role, json.dumps(claims, default=str), f"/rpc/{function}"),
                    )
                    row = conn.execute(call, (json.dumps(args),)).fetchone()
            except psycopg.Error as exc:
                diag = exc.diag
                state = exc.sqlstate or ""
                return _status(state, role), _error(
                    state, diag.message_primary or str(exc), diag.message_hint, diag.message_detail
                )
        return (204, None) if returns_void else (200, row[0] if row else None)

    @staticmethod
    def _signature(
        conn: psycopg.Connection[Any], function: str, given: set[str]
    ) -> tuple[list[str], list[str], bool] | None:
        """The named arguments to pass, their types, and whether it returns void; None: no such function."""
        rows = conn.execute(
            "select coalesce(p.proargnames[1:p.pronargs], '{}'),"
            " array(select format_type(t, null) from unnest(p.proargtypes) t), p.pronargdefaults,"
            " p.prorettype = 'void'::regtype"
            " from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = %s",
            (function,),
        ).fetchall()
        for names, types, n_defaults, returns_void in rows:
            required = set(names[: len(names) - n_defaults])
            if required <= given <= set(names):
                chosen = [(n, t) for n, t in zip(names, types, strict=True) if n in given]
                return [n for n, _ in chosen], [t for _, t in chosen], bool(returns_void)
        return None


def _error(code: str, message: str, hint: str | None = None, details: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details, "hint": hint}
