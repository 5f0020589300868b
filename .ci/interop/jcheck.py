#!/usr/bin/env python3
"""JSON helper for grpcurl.sh (so the shell script needs no jq).

  jcheck.py get FILE EXPR      print EXPR, evaluated over the JSON in FILE
  jcheck.py assert FILE EXPR   exit 1 (printing the JSON) unless EXPR is true
  jcheck.py errinfo FILE       print "<domain> <reason>" of the google.rpc.ErrorInfo in
                               grpcurl's -format-error output, or "- -" if none is shown

EXPR sees: d (the JSON), fx (fixtures.json), ts(s) (RFC 3339 -> seconds from now), json.
Field names may be written snake_case: grpcurl prints a field's json_name (lowerCamelCase)
when the server's reflection descriptors carry one and the proto name otherwise.
"""
import base64
import datetime
import json
import pathlib
import sys

FX = json.loads((pathlib.Path(__file__).parent / "fixtures.json").read_text())


class Msg(dict):
    """A JSON object whose snake_case lookups also find the lowerCamelCase key."""

    @staticmethod
    def _camel(key):
        head, *rest = key.split("_")
        return head + "".join(w[:1].upper() + w[1:] for w in rest)

    def __missing__(self, key):
        camel = self._camel(key)
        if camel != key and camel in self:
            return self[camel]
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


def ts(s):
    t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (t - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def errinfo(text):
    start = text.find("{")
    if start < 0:
        return "- -"
    status = json.loads(text[start:])
    for detail in status.get("details", []):
        if not detail.get("@type", "").endswith("/google.rpc.ErrorInfo"):
            continue
        if "reason" in detail or "domain" in detail:
            return f"{detail.get('domain', '')} {detail.get('reason', '')}"
        if "@value" in detail:  # grpcurl could not resolve the type by reflection: decode it here
            from google.rpc import error_details_pb2

            info = error_details_pb2.ErrorInfo.FromString(base64.b64decode(detail["@value"]))
            return f"{info.domain} {info.reason}"
    return "- -"


def main():
    op, path = sys.argv[1], sys.argv[2]
    text = pathlib.Path(path).read_text()
    if op == "errinfo":
        print(errinfo(text))
        return 0
    d = json.loads(text, object_hook=Msg)
    value = eval(sys.argv[3], {"d": d, "fx": FX, "ts": ts, "json": json})  # noqa: S307 - test helper
    if op == "get":
        print(value)
        return 0
    if not value:
        print(f"  expected: {sys.argv[3]}\n  got: {json.dumps(d, indent=1)[:4000]}", file=sys.stderr)
        return 1
    return 0


sys.exit(main())
