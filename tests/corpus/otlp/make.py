"""Writes the bad-input corpus that tests/bad_input.rs replays against a running server.

Run from this directory: python3 make.py (needs the opentelemetry-proto package of
tests/python/requirements.txt). The files are committed; this script says how they were made.
Each case is listed in cases.json with what the server must answer.
"""

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

T0 = 1_700_000_000_000_000_000


def tid(n):
    return f"{n:032x}"


def sid(n):
    return f"{n:016x}"


def span_json(trace, span, name="op", parent=None, start=T0, end=T0 + 1_000_000, **extra):
    s = {"traceId": trace, "spanId": span, "name": name, "kind": 2,
         "startTimeUnixNano": str(start), "endTimeUnixNano": str(end)}
    if parent:
        s["parentSpanId"] = parent
    s.update(extra)
    return s


def request_json(spans, service="corpus"):
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "corpus"}, "spans": spans}]}]}


def write_json(name, value, indent=1):
    with open(name, "w") as f:
        json.dump(value, f, indent=indent)
        f.write("\n")


def request_pb(spans):
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key = "service.name"
    kv.value.string_value = "corpus"
    ss = rs.scope_spans.add()
    for s in spans:
        ss.spans.append(s)
    return request


def span_pb(trace, span, name="op"):
    s = Span()
    s.trace_id = bytes.fromhex(trace)
    s.span_id = bytes.fromhex(span)
    s.name = name
    s.start_time_unix_nano = T0
    s.end_time_unix_nano = T0 + 1_000_000
    return s


good = request_pb([span_pb(tid(0x101), sid(i + 1)) for i in range(3)]).SerializeToString()
with open("truncated.pb", "wb") as f:
    f.write(good[: len(good) // 2])
with open("garbage.pb", "wb") as f:
    f.write(bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0A, 0x80]) * 10)

# A span name that is not UTF-8: protobuf strings must be.
bad_name = request_pb([span_pb(tid(0x102), sid(1), name="placeholder")]).SerializeToString()
with open("invalid-utf8-name.pb", "wb") as f:
    f.write(bad_name.replace(b"placeholder", b"plac\xff\xfeholde"))



def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


# AnyValue nested 200 deep (written by hand: the Python library refuses to build it), past the
# protobuf decoder's recursion limit.
value = field(1, b"leaf")                      # AnyValue.string_value
for _ in range(200):
    value = field(5, field(1, value))          # AnyValue.array_value { values: [value] }
attribute = field(1, b"deep") + field(2, value)  # KeyValue { key, value }
span = span_pb(tid(0x103), sid(1)).SerializeToString() + field(9, attribute)
with open("deep-nesting.pb", "wb") as f:
    f.write(field(1, field(2, field(2, span))))  # request.resource_spans.scope_spans.spans

with open("invalid.json", "w") as f:
    f.write('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "00"\n')
with open("invalid-utf8.json", "wb") as f:
    f.write(json.dumps(request_json([span_json(tid(0x104), sid(1), name="NAME")]))
            .encode().replace(b"NAME", b"N\xff\xfeE"))
write_json("wrong-content-type.json", request_json([span_json(tid(0x105), sid(1))]))
write_json("wrong-types.json", {"resourceSpans": [{"scopeSpans": [{"spans": "not a list"}]}]})

nested = {"stringValue": "leaf"}
for _ in range(300):
    nested = {"arrayValue": {"values": [nested]}}
write_json("deep-nesting.json",
           request_json([span_json(tid(0x106), sid(1), attributes=[{"key": "deep", "value": nested}])]),
           indent=None)

write_json("empty.json", {})
write_json("bad-ids.json", request_json([
    span_json(tid(0x107)[2:], sid(1)),                 # trace id of 15 bytes
    span_json(tid(0x107), sid(1) + "00"),              # span id of 9 bytes
    span_json("0" * 32, sid(2)),                       # all-zero trace id
    span_json(tid(0x107), "0" * 16),                   # all-zero span id
    span_json(tid(0x107), sid(3), parent="abcdef"),    # parent id of 3 bytes
    span_json(tid(0x107), sid(4)),                     # the good one
]))
write_json("end-before-start.json", request_json([
    span_json(tid(0x108), sid(1), start=T0 + 5_000_000, end=T0),
    span_json(tid(0x108), sid(2), parent=sid(1)),
]))
write_json("far-timestamps.json", request_json([
    span_json(tid(0x109), sid(1), start=0, end=1_000),
    span_json(tid(0x109), sid(2), start=7_258_118_400_000_000_000,  # 2200-01-01
              end=7_258_118_400_001_000_000),
]))
write_json("duplicate-spans.json", request_json([
    span_json(tid(0x10A), sid(1), name="root"),
    span_json(tid(0x10A), sid(1), name="root"),
    span_json(tid(0x10A), sid(2), name="child", parent=sid(1)),
]))
write_json("parent-cycle.json", request_json([
    span_json(tid(0x10B), sid(1), name="a", parent=sid(2)),
    span_json(tid(0x10B), sid(2), name="b", parent=sid(1)),
    span_json(tid(0x10B), sid(3), name="c", parent=sid(1)),
]))
