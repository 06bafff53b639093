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


def responses(operation):
    """An operation's answers by status, references to components/responses resolved."""
    return {status: resolve(response) for status, response in operation["responses"].items()}


def json_schema(response):
    return response.get("content", {}).get("application/json", {}).get("schema", {})


def shapes(response):
    """The body shapes an answer may have (the branches of a oneOf), resolved."""
    schema = json_schema(response)
    return [resolve(s) for s in schema.get("oneOf", [schema])]


def operation(method, path):
    return OPENAPI["paths"][path][method]


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


def scopes_named(text):
    """The template's scope parameters a description names (`RequestScope`, ...)."""
    parameters = {name for name in TEMPLATE["Parameters"] if name.endswith("Scope")}
    return set(re.findall(r"`(\w+)`", text)) & parameters


def test_each_operation_names_the_scopes_its_route_lets_through():
    parameters = {name for name in TEMPLATE["Parameters"] if name.endswith("Scope")}
    assert parameters == {"RequestScope", "SupportScope"}
    routes = 0
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                scopes = {s["Ref"] for s in props["Auth"]["AuthorizationScopes"]}
                described = operation(props["Method"].lower(), props["Path"])["description"]
                assert scopes_named(described) == scopes, (props["Method"], props["Path"])
                routes += 1
    assert routes == 3
    assert scopes_named(OPENAPI["components"]["securitySchemes"]["jwt"]["description"]) == parameters
    # No scope parameter the template no longer has.
    for gone in ("RequiredScope", "ListScope"):
        assert gone not in (ROOT / "openapi.yaml").read_text()


def test_api_gateways_own_answers_are_documented():
    gateway = {"401": "Unauthorized", "403": "Forbidden", "404": "Not Found",
               "429": "Too Many Requests", "503": "Service Unavailable", "500": "Internal Server Error"}
    for _, _, op in operations():
        answers = responses(op)
        for status, message in gateway.items():
            assert any(s["properties"].get("message", {}).get("enum") == [message] for s in shapes(answers[status])), status


def handler_codes():
    """The codes in ApiError::code, as refund-api answers them (wherever in its sources
    the error type lives)."""
    codes = set()
    for source in sorted((ROOT / "functions/refund-api/src").rglob("*.rs")):
        for part in source.read_text().split("pub fn code(&self)")[1:]:
            body = part.split("\n    }\n", 1)[0]
            codes.update(re.findall(r'=> "([a-z_]+)"', body))
    return codes


def error_codes(response):
    codes = set()
    for shape in shapes(response):
        error = shape.get("properties", {}).get("error")
        if error:
            codes.update(error["properties"]["code"]["enum"])
    return codes


def test_error_codes_are_the_handlers_and_each_status_has_its_own():
    by_status = {}
    for _, _, op in operations():
        for status, response in responses(op).items():
            if codes := error_codes(response):
                by_status.setdefault(status, set()).update(codes)
    assert by_status == {
        "400": {"invalid_ticket_id", "invalid_idempotency_key", "invalid_correlation_id",
                "invalid_status", "invalid_limit", "invalid_cursor"},
        "401": {"unauthenticated"},
        "403": {"insufficient_scope"},
        "404": {"refund_not_found", "status_not_enabled"},
        "405": {"method_not_allowed"},
        "500": {"internal_error"},
        "503": {"queue_unavailable", "status_unavailable"},
    }
    # A path that is none of the routes has no operation: its 404 is a response of its own.
    unrouted = error_codes(OPENAPI["components"]["responses"]["RouteNotFound"])
    assert unrouted == {"route_not_found"}
    documented, answered = set().union(*by_status.values(), unrouted), handler_codes()
    assert documented == answered, (
        f"documented, not answered by refund-api: {sorted(documented - answered)}; "
        f"answered, not documented: {sorted(answered - documented)}"
    )


def test_each_route_documents_the_codes_it_answers():
    expected = {
        ("put", "/ticket-refund/{ticket_id}"): {
            "400": {"invalid_ticket_id", "invalid_idempotency_key", "invalid_correlation_id"},
            "405": {"method_not_allowed"}, "500": {"internal_error"}, "503": {"queue_unavailable"},
        },
        ("get", "/ticket-refund/{ticket_id}"): {
            "400": {"invalid_ticket_id"}, "404": {"refund_not_found", "status_not_enabled"},
            "405": {"method_not_allowed"}, "500": {"internal_error"}, "503": {"status_unavailable"},
        },
        ("get", "/ticket-refunds"): {
            "400": {"invalid_status", "invalid_limit", "invalid_cursor"}, "404": {"status_not_enabled"},
            "405": {"method_not_allowed"}, "500": {"internal_error"}, "503": {"status_unavailable"},
        },
    }
    # Every route: no verified caller, or a token without the route's scope (docs/CONTRACT.md section 1a).
    for codes in expected.values():
        codes.update({"401": {"unauthenticated"}, "403": {"insufficient_scope"}})
    for (method, path), codes in expected.items():
        answers = responses(operation(method, path))
        assert {s: c for s, r in answers.items() if (c := error_codes(r))} == codes, (method, path)


def test_allow_retry_after_and_correlation_id_headers():
    for _, method, op in operations():
        answers = responses(op)
        assert answers["405"]["headers"]["Allow"]["required"] is True
        assert "Retry-After" in answers["503"]["headers"]
        # Every answer only the function gives echoes the correlation id.
        for status in [s for s in answers if s.startswith("2")] + ["400", "405"]:
            assert resolve(answers[status]["headers"]["Correlation-ID"])["required"] is True, status
        if method == "put":
            params = {resolve(p)["name"]: resolve(p) for p in op["parameters"]}
            for header in ("Idempotency-Key", "Correlation-ID"):
                assert params[header]["in"] == "header" and not params[header]["required"]
                assert resolve(params[header]["schema"])["maxLength"] == 128


def test_allow_lists_the_methods_each_path_serves():
    for path, item in OPENAPI["paths"].items():
        served = sorted(m.upper() for m in item if m in METHODS)
        for method in (m for m in item if m in METHODS):
            allow = resolve(item[method]["responses"]["405"])["headers"]["Allow"]["schema"]
            assert allow["enum"] == [", ".join(served)], (method, path)


# docs/CONTRACT.md section 8: the fields of a record, and of one of its interactions.
RECORD_FIELDS = [
    "ticket_id", "status", "idempotency_key", "correlation_id", "requested_by", "attempts",
    "last_error", "failure_reason", "accepted_at", "updated_at", "completed_at",
    "queued_at", "command_id", "receipt_voided_at", "payment_refunded_at", "interactions",
]
INTERACTION_FIELDS = ["call", "status", "duration_ms", "at"]
STATUSES = ["accepted", "processing", "succeeded", "failed"]
RECORD_RS = (ROOT / "shared/src/store/record.rs").read_text()


def struct_fields(name):
    body = RECORD_RS.split(f"pub struct {name} {{", 1)[1].split("\n}", 1)[0]
    return re.findall(r"^    pub (\w+):", body, re.MULTILINE)


def test_refund_record_has_exactly_the_contracts_fields_all_present():
    schemas = OPENAPI["components"]["schemas"]
    record, interaction = schemas["RefundRecord"], schemas["Interaction"]
    for schema, fields, struct in ((record, RECORD_FIELDS, "RefundRecord"),
                                   (interaction, INTERACTION_FIELDS, "Interaction")):
        assert list(schema["properties"]) == fields
        assert struct_fields(struct) == fields
        # Always present (null when unknown, never absent), and nothing else.
        assert schema["required"] == fields and schema["additionalProperties"] is False
    props = record["properties"]
    # The fields record.rs holds as Option<_> are the nullable ones.
    optional = set(re.findall(r"pub (\w+): Option<", RECORD_RS.split("pub struct RefundRecord {", 1)[1].split("\n}", 1)[0]))
    assert {name for name, schema in props.items() if schema.get("nullable")} == optional
    for name in ("accepted_at", "updated_at", "completed_at", "queued_at", "receipt_voided_at", "payment_refunded_at"):
        time = resolve(props[name]["allOf"][0]) if "allOf" in props[name] else props[name]
        assert time["format"] == "date-time" and time["pattern"].endswith("Z$"), name  # UTC
    assert resolve(props["status"])["enum"] == STATUSES
    assert props["interactions"]["maxItems"] == 20
    calls = re.findall(r'Self::\w+ => "(\w+)"', RECORD_RS.split("impl Call {", 1)[1].split("\n}", 1)[0])
    assert interaction["properties"]["call"]["enum"] == calls == ["void_receipt", "refund_payment"]


def test_the_status_routes_answer_records():
    record = {"$ref": "#/components/schemas/RefundRecord"}
    assert json_schema(responses(operation("get", "/ticket-refund/{ticket_id}"))["200"]) == record
    owner, stranger = json_schema(responses(operation("put", "/ticket-refund/{ticket_id}"))["200"])["oneOf"]
    already = resolve(owner)
    assert already["allOf"][0] == record
    assert already["allOf"][1]["properties"]["status"]["enum"] == ["succeeded"]
    # Anyone else who asks: only the ticket and that it is refunded (docs/CONTRACT.md section 1a).
    elsewhere = resolve(stranger)
    assert set(elsewhere["properties"]) == set(elsewhere["required"]) == {"ticket_id", "status"}
    assert elsewhere["additionalProperties"] is False
    assert elsewhere["properties"]["status"]["enum"] == ["succeeded"]
    page = resolve(json_schema(responses(operation("get", "/ticket-refunds"))["200"]))
    assert page["required"] == ["items", "next_cursor"] and page["additionalProperties"] is False
    assert page["properties"]["items"]["items"] == record
    assert page["properties"]["next_cursor"]["nullable"] is True


def test_the_listing_query_is_the_contracts():
    params = {resolve(p)["name"]: resolve(p) for p in operation("get", "/ticket-refunds")["parameters"]}
    assert set(params) == {"status", "limit", "cursor"}
    assert all(p["in"] == "query" and not p["required"] for p in params.values())
    assert resolve(params["status"]["schema"])["enum"] == STATUSES
    limit = params["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == ("integer", 1, 100, 20)
    assert resolve(params["cursor"]["schema"])["type"] == "string"
