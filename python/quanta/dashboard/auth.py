"""Who may use the dashboard: holders of the cluster token, nobody else.

A request is allowed if it carries `Authorization: Bearer <token>` (scripts, the jobs client) or
the session cookie the login page set after the token was typed in. Tokens are compared in
constant time; a wrong one costs the caller a short delay. Sessions are random ids kept in this
process only (at most MAX_SESSIONS, oldest dropped), so they end with the dashboard. Requests
that change something and come with a cookie must come from the dashboard's own origin.
Everything else gets 401: a browser gets the login form with it, a script a JSON error.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import html
import secrets
import time
from urllib.parse import quote, urlparse

from aiohttp import web

COOKIE = "quanta_dashboard_session"
MAX_SESSIONS = 1000
SESSION_SECONDS = 7 * 24 * 3600
FAILED_LOGIN_DELAY = 0.25
PUBLIC = {"/login", "/logout"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # (no-referrer would make browsers send Origin: null)
    "Cache-Control": "no-store",
}


class Guard:
    def __init__(self, token: str):
        if not token:
            raise ValueError("the dashboard needs a token")
        self._token = token.encode()
        self._sessions: collections.OrderedDict[str, float] = collections.OrderedDict()

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def new_session(self) -> str:
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = time.monotonic() + SESSION_SECONDS
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def session_ok(self, sid: str) -> bool:
        # Constant-time against every live session would be O(n); a dict lookup of a 256-bit
        # random id leaks nothing useful through timing.
        expiry = self._sessions.get(sid)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._sessions[sid]
            return False
        return True

    def drop_session(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def authenticated(self, request: web.Request) -> str | None:
        """'bearer', 'cookie', or None."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.token_ok(header[7:].strip()):
            return "bearer"
        sid = request.cookies.get(COOKIE)
        if sid and self.session_ok(sid):
            return "cookie"
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        try:
            response = await self._check(request, handler)
        except web.HTTPException as e:
            response = e
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def _check(self, request, handler):
        if request.path in PUBLIC:
            return await handler(request)
        how = self.authenticated(request)
        if how is None:
            if "Authorization" in request.headers:
                await asyncio.sleep(FAILED_LOGIN_DELAY)
            return unauthorized(request)
        if how == "cookie" and request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(request):
            return web.json_response({"error": "cross-origin request refused"}, status=403)
        return await handler(request)


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # not a browser form or fetch from another page
    return urlparse(origin).netloc == request.host


def wants_html(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


def unauthorized(request: web.Request, message: str = "") -> web.Response:
    if wants_html(request):
        return web.Response(status=401, text=login_page(request.path_qs, message), content_type="text/html",
                            headers={"WWW-Authenticate": 'Bearer realm="quanta"'})
    return web.json_response(
        {"error": "unauthorized: send the cluster token as 'Authorization: Bearer <token>' "
                  "(`quanta get-auth-token` on the head prints it)"},
        status=401, headers={"WWW-Authenticate": 'Bearer realm="quanta"'})


def login_page(next_path: str, message: str = "") -> str:
    safe_next = next_path if next_path.startswith("/") and not next_path.startswith("//") else "/"
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Quanta dashboard: log in</title>
<style>body{{font-family:sans-serif;background:#f4f5f7;display:flex;justify-content:center;margin-top:12vh}}
form{{background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002;width:26em}}
input[type=password]{{width:100%;padding:.5em;margin:.8em 0;box-sizing:border-box}}
.error{{color:#b00}} code{{background:#eee;padding:0 .3em}}</style></head>
<body><form method="post" action="/login?next={quote(safe_next)}">
<h2>Quanta dashboard</h2>
<p>This cluster's dashboard needs its token. On the head, <code>quanta get-auth-token</code> prints it.</p>
{note}<label>Cluster token <input type="password" name="token" id="token" autofocus autocomplete="off"></label>
<button type="submit" id="login">Log in</button></form></body></html>"""


async def login(request: web.Request) -> web.Response:
    guard: Guard = request.app["guard"]
    next_path = request.query.get("next", "/")
    if not next_path.startswith("/") or next_path.startswith("//"):
        next_path = "/"
    if request.method == "GET":
        return web.Response(text=login_page(next_path), content_type="text/html")
    if not same_origin(request):
        return web.json_response({"error": "cross-origin login refused"}, status=403)
    form = await request.post()
    token = str(form.get("token", "")).strip()
    if not token or not guard.token_ok(token):
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        return web.Response(status=401, text=login_page(next_path, "That is not this cluster's token."),
                            content_type="text/html")
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(COOKIE, guard.new_session(), httponly=True, samesite="Strict", path="/",
                        max_age=SESSION_SECONDS, secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    guard: Guard = request.app["guard"]
    sid = request.cookies.get(COOKIE)
    if sid:
        guard.drop_session(sid)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response
