"""GET /demo/: the client demo page in development, absent in production."""

from __future__ import annotations

from tests.conftest import AppClient


async def test_demo_page_and_assets_are_served_with_their_own_csp(app_client: AppClient) -> None:
    client = await app_client()
    resp = await client.get("/demo/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert '<script type="module" src="demo.js"></script>' in page
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp

    js = await client.get("/demo/demo.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    assert "petspark-demo/0.1" in await js.text()  # the bundle of clients/typescript/demo
    css = await client.get("/demo/demo.css")
    assert css.status == 200 and css.content_type == "text/css"

    redirect = await client.get("/demo", allow_redirects=False)
    assert redirect.status == 302 and redirect.headers["Location"] == "/demo/"
    for name in ("index.html", "nope.js", "..%2Fdemo.py", "demo.py"):
        assert (await client.get(f"/demo/{name}")).status == 404, name


async def test_no_demo_in_production(app_client: AppClient) -> None:
    client = await app_client(environment="production")
    for path in ("/demo/", "/demo/demo.js", "/demo"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
