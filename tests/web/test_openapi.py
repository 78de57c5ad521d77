"""/api/openapi.json is valid OpenAPI 3 and describes exactly the public routes served."""
from openapi_spec_validator import validate

from probe.web.openapi import PATHS


def public_routes(app) -> set[str]:
    paths = {r.resource.canonical for r in app.router.routes() if r.method == "GET"}
    return {p for p in paths if not p.startswith(("/static", "/api/v1/admin"))}


async def test_the_document_is_valid_openapi_and_matches_the_routes(site):
    client, _ = site
    doc = await (await client.get("/api/openapi.json")).json()
    validate(doc)
    assert set(doc["paths"]) == public_routes(client.app)
    assert set(doc["paths"]) == set(PATHS) & public_routes(client.app)


async def test_every_documented_route_answers_with_a_documented_status(site):
    client, _ = site
    doc = await (await client.get("/api/openapi.json")).json()
    for path, item in doc["paths"].items():
        url = path.replace("{id}", "api" if path.startswith(("/monitors", "/api/v1/monitors")) else "999")
        response = await client.get(url)
        assert str(response.status) in item["get"]["responses"], (url, response.status)
        documented = item["get"]["responses"][str(response.status)].get("content", {})
        assert response.content_type in documented, (url, response.content_type)
        if response.status >= 400 and path.startswith("/api/"):
            assert set(await response.json()) == {"error", "status"}, url
