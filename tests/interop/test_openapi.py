"""The official MCP Python SDK calling the tools of an `openapi` target: agentgateway's Petstore
example (trimmed, tests/fixtures/openapi/petstore.json) in front of a small Petstore API."""

import asyncio
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mcp.client import Client

from conftest import free_port, run_tollgate

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../fixtures/openapi/petstore.json")


class Petstore(BaseHTTPRequestHandler):
    """`/api/v3/pet` (POST adds), `/api/v3/pet/{id}` (GET), `/api/v3/pet/findByStatus`."""

    pets = {1: {"id": 1, "name": "doggie", "status": "available", "photoUrls": []}}

    def answer(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/api/v3/pet/findByStatus?"):
            wanted = re.findall(r"status=([^&]*)", self.path)
            return self.answer(200, [p for p in self.pets.values() if p["status"] in wanted])
        found = re.fullmatch(r"/api/v3/pet/(\d+)", self.path)
        pet = found and self.pets.get(int(found.group(1)))
        if pet:
            return self.answer(200, pet)
        self.answer(404, {"message": "Pet not found"})

    def do_POST(self):
        if self.path != "/api/v3/pet":
            return self.answer(404, {"message": "no such path"})
        pet = json.loads(self.rfile.read(int(self.headers["content-length"])))
        pet["id"] = max(self.pets) + 1
        self.pets[pet["id"]] = pet
        self.answer(200, pet)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def petstore_gateway():
    api = ThreadingHTTPServer(("127.0.0.1", 0), Petstore)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    port = free_port()
    config = (
        f"binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n"
        "          targets:\n          - name: openapi\n            openapi:\n"
        f"              schema: {{file: {json.dumps(SPEC)}}}\n"
        f"              host: 127.0.0.1:{api.server_address[1]}\n"
    )
    with run_tollgate(config):
        yield f"http://127.0.0.1:{port}/mcp"
    api.shutdown()


def test_petstore_operations_through_the_sdk(petstore_gateway):
    async def run():
        async with Client(petstore_gateway, mode="legacy") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            added = await c.call_tool("addPet", {"body": {"name": "rex", "photoUrls": [], "status": "sold"}})
            got = await c.call_tool("getPetById", {"path": {"petId": 1}})
            sold = await c.call_tool("findPetsByStatus", {"query": {"status": "sold"}})
            missing = await c.call_tool("getPetById", {"path": {"petId": 999}})
            return tools, added, got, sold, missing

    tools, added, got, sold, missing = asyncio.run(run())
    assert sorted(tools) == ["addPet", "deletePet", "findPetsByStatus", "getPetById", "placeOrder", "updatePet"]
    schema = tools["addPet"].input_schema
    assert schema["required"] == ["body"]
    assert schema["properties"]["body"]["properties"]["category"]["properties"]["name"]["type"] == "string"
    assert not added.is_error and added.structured_content["name"] == "rex"
    assert json.loads(got.content[0].text)["name"] == "doggie"
    assert [p["name"] for p in json.loads(sold.content[0].text)] == ["rex"]
    assert missing.is_error and "404" in missing.content[0].text and "Pet not found" in missing.content[0].text
