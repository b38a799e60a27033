"""People and credentials: every non-public route is guarded, and the guards hold.

The first test enumerates ``app.routes``: a route that is neither on the public allow-list
(``bot.web.guards.PUBLIC_PATHS``) nor depends on a guard fails the build, so a new admin or report
endpoint cannot ship open by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from bot.core.db import transaction
from bot.core.settings import Settings, get_settings
from bot.people.users import ROLE_RANK, create_user
from bot.web.app import create_app
from bot.web.guards import GUARD_ATTR, LOGIN_CSRF_COOKIE, is_public_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("auth") / "data"
    settings = Settings(data_dir=data, _env_file=None)
    with TestClient(create_app(settings), base_url="http://localhost:8000") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tokens(client: TestClient) -> dict[str, str]:
    """One person per role, with a password, and their API tokens."""
    result = {}
    with transaction(client.app.state.ctx.sessions) as session:  # type: ignore[attr-defined]
        for role in ROLE_RANK:
            _, token = create_user(session, f"{role}@example.com", role, password=PASSWORD)
            result[role] = token
    return result


def guard_role(dependant: Any) -> str | None:
    """The role a route's dependency tree requires, if any guard is in it."""
    for dependency in dependant.dependencies:
        role = getattr(dependency.call, GUARD_ATTR, None) or guard_role(dependency)
        if role:
            return str(role)
    return None


def flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, including those of included routers.

    FastAPI >= 0.160 keeps included routers as lazy branches; their ``effective_candidates()``
    are the routes as served (path and dependencies combined with the include's).
    """
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from flat_routes(candidates())
        else:
            yield route


def guarded_routes(client: TestClient) -> list[tuple[str, str, str, str]]:
    """(kind, method, path, role) for every guarded route; asserts the rest are public."""
    found = []
    unguarded = []
    for route in flat_routes(list(client.app.routes)):  # type: ignore[attr-defined]
        original = getattr(route, "original_route", route)
        served = getattr(route, "starlette_route", None) or route
        # The served route carries the effective path and dependencies; for HTTP routes of an
        # included router the context itself does.
        if getattr(served, "dependant", None) is None or not getattr(served, "path", ""):
            served = route
        if isinstance(original, APIRoute | APIWebSocketRoute) and served.dependant is not None:
            role = guard_role(served.dependant)
            kind = "ws" if isinstance(original, APIWebSocketRoute) else "http"
            if role is None:
                if not is_public_path(served.path):
                    unguarded.append(served.path)
                continue
            methods = sorted(original.methods or ()) if isinstance(original, APIRoute) else ["WS"]
            for method in methods:
                found.append((kind, method, served.path, role))
        elif isinstance(original, Route | Mount):
            if not is_public_path(original.path):
                unguarded.append(original.path)
        else:
            unguarded.append(repr(route))
    assert not unguarded, f"routes without a guard (add one or list them as public): {unguarded}"
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0123456789abcdef0123456789abcdef", path)


def test_every_non_public_route_has_a_guard(client: TestClient) -> None:
    routes = guarded_routes(client)
    paths = {path for _, _, path, _ in routes}
    assert "/api/agent/queue" in paths and "/ws/agent" in paths and "/agent" in paths


def test_every_guarded_route_refuses_anonymous_and_lower_roles(
    client: TestClient, tokens: dict[str, str]
) -> None:
    for kind, method, path, role in guarded_routes(client):
        url = concrete(path)
        if kind == "ws":
            with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
                ws.receive_json()
            assert closed.value.code == 1008, path
            continue
        anonymous = client.request(method, url, follow_redirects=False)
        if path == "/agent" or anonymous.status_code == 303:
            assert anonymous.status_code == 303, (method, path)
            assert anonymous.headers["location"].startswith("/login"), path
        else:
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            assert anonymous.headers.get("www-authenticate") == "Bearer"
        bad = client.request(
            method, url, headers={"Authorization": "Bearer sbt_not-a-token"}, follow_redirects=False
        )
        assert bad.status_code in (401, 303), (method, path)
        for lower, rank in ROLE_RANK.items():
            if rank >= ROLE_RANK[role]:
                continue
            refused = client.request(
                method, url, headers={"Authorization": f"Bearer {tokens[lower]}"}
            )
            assert refused.status_code == 403, (method, path, lower)
        allowed = client.request(
            method, url, headers={"Authorization": f"Bearer {tokens[role]}"}, json={"text": "x"}
        )
        assert allowed.status_code not in (401, 403), (method, path, allowed.text)


def test_agent_socket_accepts_a_token(client: TestClient, tokens: dict[str, str]) -> None:
    with client.websocket_connect(
        "/ws/agent", headers={"Authorization": f"Bearer {tokens['agent']}"}
    ) as ws:
        hello = ws.receive_json()
    assert hello["type"] == "hello" and hello["agent"] == "agent@example.com"


def sign_in(client: TestClient, email: str, password: str, next_url: str = "/agent") -> Any:
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf.group(1), "next": next_url},
        follow_redirects=False,
    )


def test_sign_in_sets_a_hardened_cookie_and_opens_the_console(
    client: TestClient, tokens: dict[str, str]
) -> None:
    client.cookies.clear()
    response = sign_in(client, "agent@example.com", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/agent"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/agent")
    assert page.status_code == 200 and "agent@example.com" in page.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None
    # Cookie-authenticated writes need the CSRF token; reads do not.
    assert client.get("/api/agent/queue").status_code == 200
    missing = client.post("/api/agent/conversations/nope/claim")
    assert missing.status_code == 403
    with_token = client.post(
        "/api/agent/conversations/nope/claim", headers={"X-CSRF-Token": csrf.group(1)}
    )
    assert with_token.status_code == 404
    # Sign out needs the token too.
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    out = client.post("/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/agent", follow_redirects=False).status_code == 303


def test_wrong_password_forged_form_and_open_redirect(client: TestClient) -> None:
    client.cookies.clear()
    assert sign_in(client, "agent@example.com", "wrong password").status_code == 401
    assert sign_in(client, "nobody@example.com", PASSWORD).status_code == 401
    forged = client.post(
        "/login",
        data={"email": "agent@example.com", "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code == 400
    client.cookies.delete(LOGIN_CSRF_COOKIE)
    response = sign_in(client, "agent@example.com", PASSWORD, next_url="//evil.example/")
    assert response.headers["location"] == "/agent"
    client.cookies.clear()


def test_a_tampered_cookie_is_refused(client: TestClient) -> None:
    client.cookies.clear()
    sign_in(client, "agent@example.com", PASSWORD)
    name = get_settings().session_cookie_name
    value = client.cookies.get(name)
    assert value
    body, _, signature = value.rpartition(".")
    client.cookies.clear()
    client.cookies.set(name, body + "." + ("0" * len(signature)))
    assert client.get("/api/agent/queue").status_code == 401
    client.cookies.clear()


def test_cross_origin_cookie_socket_is_refused(client: TestClient) -> None:
    client.cookies.clear()
    sign_in(client, "agent@example.com", PASSWORD)
    name = get_settings().session_cookie_name
    cookie = f"{name}={client.cookies.get(name)}"
    client.cookies.clear()
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(
            "/ws/agent", headers={"Origin": "https://evil.example", "Cookie": cookie}
        ) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1008
    with client.websocket_connect(
        "/ws/agent", headers={"Origin": "http://testserver", "Cookie": cookie}
    ) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_cli_user_add_prints_a_working_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import app as cli
    from bot.people.users import user_by_token

    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        added = runner.invoke(cli, ["user", "add", "Lead@Example.com", "--role", "lead"])
        assert added.exit_code == 0, added.output
        token = added.output.strip().splitlines()[-1]
        assert token.startswith("sbt_")
        again = runner.invoke(cli, ["user", "add", "lead@example.com", "--role", "lead"])
        assert again.exit_code == 1
        bad_role = runner.invoke(cli, ["user", "add", "x@example.com", "--role", "boss"])
        assert bad_role.exit_code == 1
        renewed = runner.invoke(cli, ["user", "token", "lead@example.com"])
        assert renewed.exit_code == 0
        new_token = renewed.output.strip().splitlines()[-1]
        assert new_token != token
        from bot.core.db import make_engine, make_session_factory

        engine = make_engine(get_settings().effective_database_url)
        with make_session_factory(engine)() as session:
            assert user_by_token(session, token) is None  # the old token stopped working
            user = user_by_token(session, new_token)
            assert user is not None and user.role == "lead" and user.email == "lead@example.com"
            assert user.token_hash != new_token  # stored hashed
        with_password = runner.invoke(
            cli,
            ["user", "add", "agent2@example.com", "--role", "agent", "--password"],
            input="s3cret-pass\ns3cret-pass\n",
        )
        assert with_password.exit_code == 0, with_password.output
        with make_session_factory(engine)() as session:
            from bot.people.users import authenticate

            user = authenticate(session, "agent2@example.com", "s3cret-pass")
            assert user is not None and (user.password_hash or "").startswith("$argon2id$")
            assert authenticate(session, "agent2@example.com", "wrong") is None
        engine.dispose()
    finally:
        get_settings.cache_clear()
