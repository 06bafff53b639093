"""openapi.yaml agrees with template.yaml's routes and with the codes refund-api answers.

Run by `make test` with the template checks. The document's answers themselves are checked
against the running API by tests/e2e/test_schemathesis.py.
"""

import re
from pathlib import Path

import yaml
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = yaml.safe_load((ROOT / "openapi.yaml").read_text())
TEMPLATE = cfn_yaml.load(str(ROOT / "template.yaml"))
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def template_routes():
    routes = set()
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    return routes


def openapi_routes():
    return {
        (method.upper(), path)
        for path, item in OPENAPI["paths"].items()
        for method in item
        if method in METHODS
    }


def operations():
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def resolve(node):
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/")
        section, key = name.split("/")
        node = OPENAPI["components"][section][key]
    return node


def test_paths_and_methods_are_the_templates_routes():
    assert template_routes(), "the template has HttpApi routes"
    assert openapi_routes() == template_routes()


def test_path_parameters_are_the_routes_placeholders():
    for path, _, operation in operations():
        declared = {resolve(p)["name"] for p in operation["parameters"] if resolve(p)["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path


def test_every_route_is_behind_the_jwt_bearer_scheme():
    scheme = OPENAPI["components"]["securitySchemes"]["jwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert OPENAPI["security"] == [{"jwt": []}]
    for _, _, operation in operations():
        assert operation.get("security", OPENAPI["security"]) == [{"jwt": []}]


def test_api_gateways_own_answers_are_documented():
    gateway = {"401": "Unauthorized", "403": "Forbidden", "404": "Not Found",
               "429": "Too Many Requests", "503": "Service Unavailable", "500": "Internal Server Error"}
    for _, _, operation in operations():
        for status, message in gateway.items():
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            shapes = [resolve(s) for s in schema.get("oneOf", [schema])]
            assert any(s["properties"].get("message", {}).get("enum") == [message] for s in shapes), status


def handler_codes():
    """The codes in ApiError::code, as refund-api answers them."""
    source = (ROOT / "functions/refund-api/src/handler.rs").read_text()
    body = source.split("pub fn code(&self)", 1)[1].split("\n    }\n", 1)[0]
    return set(re.findall(r'=> "([a-z_]+)"', body))


def test_error_codes_are_the_handlers_and_each_status_has_its_own():
    by_status = {}
    for _, _, operation in operations():
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            for shape in (resolve(s) for s in schema.get("oneOf", [schema])):
                error = shape.get("properties", {}).get("error")
                if error:
                    by_status.setdefault(status, set()).update(error["properties"]["code"]["enum"])
    assert by_status == {
        "400": {"invalid_ticket_id", "invalid_idempotency_key", "invalid_correlation_id"},
        "405": {"method_not_allowed"},
        "500": {"internal_error"},
        "503": {"queue_unavailable"},
    }
    assert set().union(*by_status.values()) == handler_codes()


def test_allow_retry_after_and_correlation_id_headers():
    for _, _, operation in operations():
        responses = operation["responses"]
        assert responses["405"]["headers"]["Allow"]["required"] is True
        assert "Retry-After" in responses["503"]["headers"]
        for status in ("202", "400", "405"):
            assert resolve(responses[status]["headers"]["Correlation-ID"])["required"] is True, status
        params = {resolve(p)["name"]: resolve(p) for p in operation["parameters"]}
        for header in ("Idempotency-Key", "Correlation-ID"):
            assert params[header]["in"] == "header" and not params[header]["required"]
            assert resolve(params[header]["schema"])["maxLength"] == 128
