#!/usr/bin/env python3
"""Re-check examples/cases/*.json against the real OPA evaluator (not part of CI).

OPA itself comes from the PyPI package `opa-golib-python-bindings` (OPA's Go
`rego` package, v1.20.2 in release 0.4.4, built as a shared library behind a
ctypes wrapper). The wheel declares Python >= 3.14 but works on 3.10+, so it
can be unpacked instead of installed:

    pip download opa-golib-python-bindings==0.4.4 --no-deps \
        --only-binary=:all: --python-version 3.14 -d /tmp/opawhl
    unzip -q /tmp/opawhl/*.whl -d /tmp/opawhl/x
    OPA_BINDINGS_PATH=/tmp/opawhl/x python3 examples/tools/check_with_opa.py

Bundles are loaded the way OPA loads a bundle directory: every *.rego file
is a module, and every data.json is mounted at its directory's path
(payments/roles/data.json -> data.payments.roles). Each case's query is then
evaluated with the case's input, and the first expression's value is compared
with "expected" ({} when the query is undefined). Note that the bindings turn
on strict builtin errors, unlike `opa eval`; no case raises a builtin error,
so the results are the same.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.environ.get("OPA_BINDINGS_PATH", ""))
from opa_bindings import OpaEngine  # noqa: E402
from opa_bindings.engine import _cstr, _encode_input  # noqa: E402

EXAMPLES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_bundle(engine, root):
    for path in sorted(glob.glob(os.path.join(root, "**", "*.rego"), recursive=True)):
        with open(path) as f:
            engine.add_policy(os.path.relpath(path, root), f.read())
    for path in sorted(glob.glob(os.path.join(root, "**", "data.json"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(path), root)
        with open(path) as f:
            engine.add_data(json.load(f), path="" if rel == "." else rel.replace(os.sep, "."))


def evaluate(engine, query, input_doc):
    with engine._eval_lock:
        envelope = engine._call(engine._lib.OpaEvalQuery, _cstr(query), _encode_input(input_doc), 0, 0)
    results = envelope.get("result") or []
    if not results:
        return {}
    if len(results) != 1:
        raise ValueError(f"{query}: {len(results)} results")
    return {"result": results[0]["expressions"][0]["value"]}


def canonical(value):
    return json.dumps(value, sort_keys=True)


def main():
    tenants = sys.argv[1:] or sorted(
        os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(EXAMPLES, "cases", "*.json"))
    )
    passed = failed = 0
    for tenant in tenants:
        engine = OpaEngine()
        load_bundle(engine, os.path.join(EXAMPLES, "bundles", tenant))
        with open(os.path.join(EXAMPLES, "cases", tenant + ".json")) as f:
            cases = json.load(f)
        for case in cases:
            with open(os.path.join(EXAMPLES, "inputs", case["input"])) as f:
                input_doc = json.load(f)
            try:
                got = evaluate(engine, case["query"], input_doc)
            except Exception as exc:  # report and keep going
                got = {"error": str(exc)}
            if canonical(got) == canonical(case["expected"]):
                passed += 1
            else:
                failed += 1
                print(f"FAIL {tenant}/{case['name']}\n  expected {canonical(case['expected'])}\n  got      {canonical(got)}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
