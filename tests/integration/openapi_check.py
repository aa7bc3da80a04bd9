"""Checks answers of `cocoon serve` against docs/openapi.yaml.

    from openapi_check import check_response
    check_response("GET", "/v1/boxes/b1", status, headers, body)

finds the operation the request reached (a concrete path such as /v1/boxes/b1 or
/v1/pfx/boxes/b1, or a template such as /boxes/{box_id}), then checks that the status is
documented for it, that the Content-Type is one the document gives for that status, that
the headers the document marks required are there, and that the body matches the
schema ($refs resolved, formats date-time and byte checked). JSON bodies are checked as a
whole, application/x-ndjson bodies line by line.

By default the check is strict: an object schema that lists its properties is taken as
closed, so a field the server sends but the document does not describe fails too (the
document itself stays open for clients). A method the path does not take must have been
answered 405 with an Allow header naming exactly the documented methods; an unknown path
404. Both with the error envelope.

check_request(method, path, json_body) checks a request body against the operation's
request schema (the server refuses unknown fields: the schemas are closed).

Needs python3-yaml and python3-jsonschema (Debian packages, installed by scripts/setup).
"""
import base64
import copy
import datetime
import json
import os
import re

import jsonschema
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCUMENT = os.path.join(REPO, "docs", "openapi.yaml")
METHODS = ("get", "head", "post", "put", "delete", "patch", "options", "trace")
API_ROOT = "/v1"


class OpenAPIMismatch(AssertionError):
    """An answer or a request the document does not describe."""


def _format_checker():
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def date_time(value):
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    @checker.checks("byte", raises=ValueError)
    def byte(value):
        if not isinstance(value, str):
            return True
        base64.b64decode(value, validate=True)
        return True

    return checker


# Subschemas that see part of an object, or only test it: never closed.
_PARTIAL = ("allOf", "if", "then", "else", "not")


def _close_objects(node, inside_composition=False):
    """Strict mode: every object schema that lists properties and says nothing about
    others gets additionalProperties: false (not the branches of an allOf, nor the
    conditions if/then/else/not, which see part of the object)."""
    if isinstance(node, list):
        for item in node:
            _close_objects(item, inside_composition)
        return
    if not isinstance(node, dict):
        return
    if ("properties" in node and "additionalProperties" not in node and "patternProperties" not in node
            and "unevaluatedProperties" not in node and not inside_composition):
        node["additionalProperties"] = False
    for key, value in node.items():
        _close_objects(value, key in _PARTIAL)


class Document:
    """docs/openapi.yaml loaded once: operations by path, schema validators."""

    def __init__(self, path=DOCUMENT, strict=True):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.strict = strict
        components = copy.deepcopy(self.doc.get("components", {}))
        if strict:
            _close_objects(components.get("schemas", {}))
        self.components = components
        self.formats = _format_checker()
        self.paths = []  # (template, regex, path item, takes a prefix)
        for template, item in self.doc["paths"].items():
            pattern = ""
            for part in re.split(r"(\{[^}]+\})", template):
                if part.startswith("{"):
                    name = part[1:-1]
                    # An image reference may hold '/'; the other parameters are one segment.
                    pattern += "(?P<%s>.+)" % name if self._allows_reserved(item, name) else "(?P<%s>[^/]+)" % name
                else:
                    pattern += re.escape(part)
            prefixed = any("{prefix}" in s.get("url", "") for s in item.get("servers", []))
            self.paths.append((template, re.compile(pattern + "/?"), item, prefixed))
        # Literal paths win over templates (/images/pull over /images/{image}).
        self.paths.sort(key=lambda p: (p[0].count("{"), -len(re.sub(r"\{[^}]+\}", "", p[0]))))

    def _allows_reserved(self, item, name):
        for param in item.get("parameters", []):
            param = self.resolve(param)
            if param.get("name") == name and param.get("in") == "path":
                return bool(param.get("x-cocoon-multi-segment"))
        return False

    def resolve(self, node):
        """Follows a local $ref (#/components/...) to what it names."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise OpenAPIMismatch(f"only local $refs are supported, not {ref}")
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            if seen > 32:
                raise OpenAPIMismatch(f"$ref loop at {ref}")
        return node

    # ---- finding the operation ----

    def find_path(self, path):
        """(template, path item, parameters) for a concrete path or a template; None
        when the document has no such path."""
        path = path.split("?", 1)[0]
        rooted = path.startswith(API_ROOT + "/")
        if rooted:
            path = path[len(API_ROOT):]
        if path in self.doc["paths"]:
            return path, self.doc["paths"][path], {}
        for template, regex, item, _ in self.paths:
            m = regex.fullmatch(path)
            if m:
                return template, item, m.groupdict()
        # /v1/{prefix}/... on the paths whose servers take a routing prefix
        parts = path.split("/", 2)
        if rooted and len(parts) == 3 and parts[1]:
            rest = "/" + parts[2]
            for template, regex, item, prefixed in self.paths:
                if prefixed and (regex.fullmatch(rest) or rest == template):
                    m = regex.fullmatch(rest)
                    return template, item, m.groupdict() if m else {}
        return None

    def operation(self, method, path):
        """(template, operation) or raises OpenAPIMismatch."""
        found = self.find_path(path)
        if not found:
            raise OpenAPIMismatch(f"{method} {path}: no path of the document matches")
        template, item, _ = found
        op = item.get(method.lower())
        if op is None:
            raise OpenAPIMismatch(f"{method} {path}: the document's {template} has no {method.upper()}")
        return template, op

    def documented_methods(self, item):
        return sorted(m.upper() for m in METHODS if m in item)

    # ---- schemas ----

    def validator(self, schema):
        root = copy.deepcopy(schema)
        if self.strict:
            _close_objects(root)
        root["components"] = self.components  # so "#/components/..." resolves
        return jsonschema.Draft202012Validator(root, format_checker=self.formats)

    def validate(self, schema, value, what):
        errors = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            lines = []
            for e in errors[:8]:
                where = "/".join(str(p) for p in e.absolute_path) or "(top)"
                lines.append(f"  at {where}: {e.message[:400]}")
            text = json.dumps(value)[:1500]
            raise OpenAPIMismatch(f"{what} does not match the document:\n" + "\n".join(lines) + f"\n  value: {text}")

    # ---- checks ----

    def check_response(self, method, path, status, headers=None, body=b""):
        """Checks one answer; returns the parsed JSON body (or the list of NDJSON lines,
        or the raw bytes for other types)."""
        method = method.upper()
        headers = {k.lower(): v for k, v in (dict(headers or {})).items()}
        what = f"{method} {path} -> {status}"
        found = self.find_path(path)
        if not found:
            if status != 404:
                raise OpenAPIMismatch(f"{what}: the document has no such path, so the server must answer 404")
            return self._check_error_envelope(what, headers, body, method)
        template, item, _ = found
        op = item.get(method.lower())
        if op is None:
            if status != 405:
                raise OpenAPIMismatch(f"{what}: {template} has no {method}, so the server must answer 405")
            allow = sorted(a.strip() for a in headers.get("allow", "").split(",") if a.strip())
            if allow != self.documented_methods(item):
                raise OpenAPIMismatch(f"{what}: Allow {allow} but the document's {template} has "
                                      f"{self.documented_methods(item)}")
            return self._check_error_envelope(what, headers, body, method)
        responses = op.get("responses", {})
        response = (responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
                    or responses.get("default"))
        if response is None:
            raise OpenAPIMismatch(f"{what}: status {status} is not documented for {method} {template} "
                                  f"(documented: {', '.join(sorted(responses))})")
        response = self.resolve(response)
        for name, header in (response.get("headers") or {}).items():
            header = self.resolve(header)
            if header.get("required") and name.lower() not in headers:
                raise OpenAPIMismatch(f"{what}: the document requires a {name} header; got {sorted(headers)}")
        content = response.get("content") or {}
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if isinstance(body, str):
            body = body.encode()
        if method == "HEAD" or status in (101, 204, 304):
            if body:
                raise OpenAPIMismatch(f"{what}: a body came with a {method} {status} answer")
            return None
        if not content:
            if body:
                raise OpenAPIMismatch(f"{what}: the document gives no body for {status}, got {body[:200]!r}")
            return None
        if ctype not in content:
            raise OpenAPIMismatch(f"{what}: Content-Type {ctype!r} is not one the document gives "
                                  f"({', '.join(content)})")
        schema = content[ctype].get("schema", {})
        if ctype == "application/json":
            try:
                value = json.loads(body)
            except ValueError as e:
                raise OpenAPIMismatch(f"{what}: the body is not JSON ({e}): {body[:300]!r}")
            self.validate(schema, value, what)
            return value
        if ctype == "application/x-ndjson":
            values = []
            for n, line in enumerate(body.split(b"\n")):
                if not line:
                    continue
                try:
                    value = json.loads(line)
                except ValueError as e:
                    raise OpenAPIMismatch(f"{what}: NDJSON line {n} is not JSON ({e}): {line[:300]!r}")
                self.validate(schema, value, f"{what} NDJSON line {n}")
                values.append(value)
            if not body.endswith(b"\n"):
                raise OpenAPIMismatch(f"{what}: the NDJSON stream does not end with a newline")
            return values
        if schema.get("type") == "string" and schema.get("format") != "binary":
            try:
                body.decode()
            except UnicodeDecodeError:
                raise OpenAPIMismatch(f"{what}: a {ctype} body that is not text")
        return body

    def _check_error_envelope(self, what, headers, body, method):
        if method == "HEAD":
            return None
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise OpenAPIMismatch(f"{what}: an error must be application/json, got {ctype!r}")
        value = json.loads(body)
        self.validate({"$ref": "#/components/schemas/ErrorResponse"}, value, what)
        return value

    def check_request(self, method, path, body):
        """Checks a JSON request body against the operation's request schema."""
        template, op = self.operation(method, path)
        content = (self.resolve(op.get("requestBody") or {}).get("content") or {})
        if "application/json" not in content:
            raise OpenAPIMismatch(f"{method} {template} takes no JSON body")
        self.validate(content["application/json"].get("schema", {}), body, f"request {method} {template}")


_DEFAULT = {}


def document(strict=True):
    if strict not in _DEFAULT:
        _DEFAULT[strict] = Document(strict=strict)
    return _DEFAULT[strict]


def check_response(method, path, status, headers=None, body=b"", strict=True):
    return document(strict).check_response(method, path, status, headers, body)


def check_request(method, path, body, strict=True):
    return document(strict).check_request(method, path, body)
