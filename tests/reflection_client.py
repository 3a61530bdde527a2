#!/usr/bin/env python3
"""A utraced client that knows no .proto file: everything comes from gRPC
server reflection.

Usage: reflection_client.py unix:///path/to/utraced.sock '<TraceRequest as JSON>'

It lists the server's services over reflection v1alpha and v1, fetches the
descriptors of utrace.v1.Tracer and grpc.health.v1.Health over reflection,
builds message classes from them, asks grpc.health.v1.Health/Check, then calls
the server-streaming /utrace.v1.Tracer/Trace with the TraceRequest parsed from
the JSON argument, and prints ONE line of JSON on stdout:

  {"services": [...], "services_v1": [...], "health": {"": "SERVING", ...},
   "status": "OK" | "<gRPC status code name>", "details": "<status message>",
   "events": N, "first_kind": "attached", "syscall_entries": {"getppid": 50, ...},
   "entry_texts": {"<SyscallEntry.text (EngineSpec.decode)>": count, ...},
   "syscall_exits": N, "dropped_before": N, "death_seen": bool,
   "exit_code": int | null, "exit_signal": int | null,
   "rpcs": {"<every utrace.v1.Tracer method>": "<status code name>", ...}}

The channel is grpcio's on its defaults (no options): gRPC core sends the
socket's path as :authority on a unix: target, which the server accepts.
"rpcs" is each method of the service, learnt from reflection, called once
with an empty request (a stream of none for Session): a status the server
chose (OK, INVALID_ARGUMENT, NOT_FOUND...), never one the transport made.

A failed Trace call is a result, not an error (status/details say why); any
other failure (reflection, health) exits non-zero with a traceback on stderr.
Needs grpcio, grpcio-reflection and protobuf (pip install grpcio
grpcio-reflection protobuf).
"""

import json
import sys
from collections import Counter

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

# Bound on every call, so a hung server fails the test instead of hanging it.
TIMEOUT_S = 90.0

# reflection v1 has the same messages as v1alpha (only the package differs),
# so the v1alpha classes serialize v1 requests and parse v1 responses.
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


class Reflection:
    """Descriptors fetched over one reflection method, into one pool."""

    def __init__(self, channel):
        self.stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        self.v1 = channel.stream_stream(
            REFLECTION_V1,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        self.pool = descriptor_pool.DescriptorPool()
        self.files = {}  # name -> FileDescriptorProto, as served
        self.added = set()

    def ask(self, request, v1=False):
        call = self.v1 if v1 else self.stub.ServerReflectionInfo
        responses = list(call(iter([request]), timeout=TIMEOUT_S))
        if len(responses) != 1:
            raise RuntimeError(f"reflection: {len(responses)} responses to one request")
        r = responses[0]
        if r.HasField("error_response"):
            e = r.error_response
            code = next((c.name for c in grpc.StatusCode if c.value[0] == e.error_code), "?")
            raise RuntimeError(
                f"reflection error {code} ({e.error_code}) for {request}: {e.error_message}"
            )
        return r

    def list_services(self, v1=False):
        r = self.ask(reflection_pb2.ServerReflectionRequest(list_services=""), v1=v1)
        return sorted(s.name for s in r.list_services_response.service)

    def _take(self, response):
        for raw in response.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.files.setdefault(fd.name, fd)

    def _fetch_file(self, name):
        if name in self.files:
            return
        try:
            self._take(self.ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name)))
        except RuntimeError:
            # A well-known type the server does not serve: protobuf has it.
            fd = descriptor_pb2.FileDescriptorProto()
            descriptor_pool.Default().FindFileByName(name).CopyToProto(fd)
            self.files[name] = fd

    def _add(self, name):
        """Add `name` to the pool after its dependencies."""
        if name in self.added:
            return
        self._fetch_file(name)
        fd = self.files[name]
        for dep in fd.dependency:
            self._add(dep)
        self.pool.Add(fd)
        self.added.add(name)

    def load_symbol(self, symbol):
        """Fetch the file defining `symbol` (and its imports) into the pool."""
        before = set(self.files)
        self._take(
            self.ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        )
        for name in sorted(set(self.files) - before):
            self._add(name)

    def message_class(self, full_name):
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def method(self, service, method):
        """(path, request class, response class, client_streaming, server_streaming)."""
        sd = self.pool.FindServiceByName(service)
        md = sd.methods_by_name[method]
        # Streaming flags come from the raw proto (the Python descriptor API
        # does not expose them in every protobuf version).
        fdp = self.files[sd.file.name]
        svc = next(s for s in fdp.service if s.name == sd.name)
        mp = next(m for m in svc.method if m.name == method)
        return (
            f"/{service}/{method}",
            self.message_class(md.input_type.full_name),
            self.message_class(md.output_type.full_name),
            mp.client_streaming,
            mp.server_streaming,
        )


def health(channel, refl, services):
    """grpc.health.v1.Health/Check for each name in `services`, via reflection."""
    refl.load_symbol("grpc.health.v1.Health")
    path, req_cls, resp_cls, cs, ss = refl.method("grpc.health.v1.Health", "Check")
    assert not cs and not ss, "Health/Check should be unary"
    check = channel.unary_unary(
        path,
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString,
    )
    status_enum = refl.pool.FindEnumTypeByName(
        "grpc.health.v1.HealthCheckResponse.ServingStatus"
    )
    out = {}
    for name in services:
        try:
            r = check(req_cls(service=name), timeout=TIMEOUT_S)
            out[name] = status_enum.values_by_number[r.status].name
        except grpc.RpcError as e:
            out[name] = e.code().name
    return out


def trace(channel, refl, body):
    refl.load_symbol("utrace.v1.Tracer")
    path, req_cls, resp_cls, cs, ss = refl.method("utrace.v1.Tracer", "Trace")
    assert not cs and ss, "Trace should be server-streaming"
    request = json_format.Parse(body, req_cls())
    call = channel.unary_stream(
        path,
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString,
    )
    out = {
        "status": "OK",
        "details": "",
        "events": 0,
        "first_kind": None,
        "syscall_entries": {},
        "entry_texts": {},
        "syscall_exits": 0,
        "dropped_before": 0,
        "death_seen": False,
        "exit_code": None,
        "exit_signal": None,
    }
    entries = Counter()
    texts = Counter()
    try:
        for ev in call(request, timeout=TIMEOUT_S):
            d = json_format.MessageToDict(ev)
            out["events"] += 1
            out["dropped_before"] += int(d.get("droppedBefore", 0))
            if out["first_kind"] is None:
                kinds = [k for k in ("attached", "syscallEntry", "syscallExit", "signal",
                                     "clone", "exec", "exit", "death") if k in d]
                out["first_kind"] = kinds[0] if kinds else None
            if "syscallEntry" in d:
                entries[d["syscallEntry"].get("name", "")] += 1
                if d["syscallEntry"].get("text"):
                    texts[d["syscallEntry"]["text"]] += 1
            elif "syscallExit" in d:
                out["syscall_exits"] += 1
            elif "death" in d and d["death"].get("processGone", False):
                out["death_seen"] = True
                st = d["death"].get("status", {})
                # proto3 JSON omits zero values: an absent code is 0.
                out["exit_code"] = int(st.get("code", 0))
                out["exit_signal"] = int(st.get("signal", 0))
    except grpc.RpcError as e:
        out["status"] = e.code().name
        out["details"] = e.details() or ""
    out["syscall_entries"] = dict(sorted(entries.items()))
    out["entry_texts"] = dict(sorted(texts.items()))
    return out


def every_rpc(channel, refl):
    """Each method of utrace.v1.Tracer, called once with an empty request;
    the status code name of each."""
    refl.load_symbol("utrace.v1.Tracer")
    sd = refl.pool.FindServiceByName("utrace.v1.Tracer")
    out = {}
    for md in sd.methods:
        path, req_cls, resp_cls, cs, ss = refl.method("utrace.v1.Tracer", md.name)
        kinds = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }
        call = kinds[(cs, ss)](
            path,
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        request = iter([]) if cs else req_cls()
        try:
            r = call(request, timeout=10.0)
            if ss:
                for _ in r:
                    pass
            out[md.name] = "OK"
        except grpc.RpcError as e:
            out[md.name] = e.code().name
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    uri, body = sys.argv[1], sys.argv[2]
    # No options: gRPC core (>= 1.57) then sends the percent-encoded socket
    # path ("tmp%2Fx%2Futraced.sock") as :authority, which utraced accepts.
    channel = grpc.insecure_channel(uri)
    grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
    refl = Reflection(channel)
    result = {
        "services": refl.list_services(),
        "services_v1": refl.list_services(v1=True),
    }
    result["health"] = health(channel, refl, ["", "utrace.v1.Tracer"])
    result.update(trace(channel, refl, body))
    result["rpcs"] = every_rpc(channel, refl)
    channel.close()
    print(json.dumps(result, sort_keys=True, ensure_ascii=True), flush=True)


if __name__ == "__main__":
    main()
