#!/usr/bin/env python3
"""Time OPA v1.20.2's own Go engine on the example tenants (not part of CI).

The counterpart of `cargo bench -p tenet-policy --bench strategies`: the same
entrypoints and the same inputs (TENANTS below mirrors the bench). OPA runs
in-process through the PyPI package `opa-golib-python-bindings==0.4.4` (see
check_with_opa.py for how to unpack it), whose engine keeps one prepared
query per query string. Each call also pays the bindings' own cost (ctypes,
JSON encoding of the input, decoding of the result), so the script times a
trivial policy (`allow := true`) on the same inputs in the same run and
reports the difference as OPA's policy cost per decision:

    OPA_BINDINGS_PATH=/tmp/opawhl/x python3 examples/tools/bench_opa.py

Prints, per tenant: the median of `ROUNDS` rounds of µs per call for the
tenant's `allow`, for the trivial policy, and their difference.
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_with_opa import EXAMPLES, load_bundle  # noqa: E402
from opa_bindings import OpaEngine  # noqa: E402
from opa_bindings.engine import _cstr, _encode_input  # noqa: E402

TENANTS = [
    ("payments", "data.payments.authz.allow",
     ["alice-refund", "dave-refund-small", "dave-refund-over-limit", "frank-foreign-payout"]),
    ("storefront", "data.storefront.ingress.allow",
     ["get-product", "cart-with-bearer", "admin-without-role", "unknown-host"]),
    ("analytics", "data.analytics.access.allow",
     ["marketing-query-confidential", "public-dataset-from-home", "confidential-after-hours", "export-pii"]),
]
ROUNDS = int(os.environ.get("ROUNDS", "7"))
CALLS = int(os.environ.get("CALLS", "2000"))


def per_call_us(engine, query, inputs):
    encoded = [_encode_input(i) for i in inputs]
    q = _cstr(query)
    fn = engine._lib.OpaEvalQuery
    for e in encoded:  # warm the prepared query
        engine._call(fn, q, e, 0, 0)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for n in range(CALLS):
            engine._call(fn, q, encoded[n % len(encoded)], 0, 0)
        rounds.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(rounds)


def main():
    trivial = OpaEngine()
    trivial.add_policy("trivial.rego", "package trivial\n\nallow := true\n")
    print(f"OPA v1.20.2 (opa-golib-python-bindings), median of {ROUNDS} rounds x {CALLS} calls")
    print("tenant      allow µs  trivial µs  policy µs")
    for tenant, query, names in TENANTS:
        inputs = []
        for name in names:
            with open(os.path.join(EXAMPLES, "inputs", tenant, name + ".json")) as f:
                inputs.append(json.load(f))
        engine = OpaEngine()
        load_bundle(engine, os.path.join(EXAMPLES, "bundles", tenant))
        full = per_call_us(engine, query, inputs)
        base = per_call_us(trivial, "data.trivial.allow", inputs)
        print(f"{tenant:<11} {full:8.1f}  {base:10.1f}  {full - base:9.1f}")


if __name__ == "__main__":
    main()
