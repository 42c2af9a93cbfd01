#!/usr/bin/env python3
"""(Re)generate the expected answers of the conformance corpus
(fixtures/conformance/<source>/cases.json) with OPA v1.20.2 itself. Not run
in CI: the answers are committed, and crates/tenet-policy/tests/conformance.rs
compares tenet with them.

OPA comes from the PyPI package `opa-golib-python-bindings==0.4.4` (OPA's Go
`rego` package v1.20.2 behind ctypes); unpack the wheel as the docstring of
check_with_opa.py says, then:

    OPA_BINDINGS_PATH=/tmp/opawhl/x python3 examples/tools/conformance_with_opa.py [SOURCE...]

Each bundle of a source is loaded into a fresh engine: every module it lists
(files under fixtures/conformance/<source>/files/) with add_policy, every
data file mounted at its directory (as OPA loads a bundle directory). Each
case's query is evaluated with the case's input, and the first expression's
value becomes "expected": {"result": value}, {} when undefined, or
{"error": message} when OPA fails (compile or evaluation error). The
bindings turn on strict builtin errors (`opa eval` does not); tenet is
non-strict, so a case whose OPA answer is a builtin error is pinned with
that reason rather than counted as a tenet bug.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.environ.get("OPA_BINDINGS_PATH", ""))
from opa_bindings import OpaEngine  # noqa: E402,F401
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_with_opa import evaluate  # noqa: E402  (one evaluate for both tools)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures", "conformance")


def load_bundle(engine, source_dir, bundle):
    for path in bundle["modules"]:
        with open(os.path.join(source_dir, "files", path)) as f:
            engine.add_policy(path, f.read())
    for path in bundle.get("data", []):
        with open(os.path.join(source_dir, "files", path)) as f:
            mount = os.path.dirname(path)
            engine.add_data(json.load(f), path=mount.replace("/", "."))


def regenerate(source):
    source_dir = os.path.join(FIXTURES, source)
    cases_path = os.path.join(source_dir, "cases.json")
    with open(cases_path) as f:
        doc = json.load(f)
    engines = {}
    counts = {"result": 0, "undefined": 0, "error": 0}
    for case in doc["cases"]:
        name = case["bundle"]
        if name not in engines:
            engine = OpaEngine()
            try:
                load_bundle(engine, source_dir, doc["bundles"][name])
                engines[name] = (engine, None)
            except Exception as exc:
                engines[name] = (engine, str(exc))
        engine, load_error = engines[name]
        if load_error is not None:
            got = {"error": load_error}
        else:
            try:
                got = evaluate(engine, case["query"], case["input"])
            except Exception as exc:
                got = {"error": str(exc)}
        case["expected"] = got
        counts["error" if "error" in got else "result" if "result" in got else "undefined"] += 1
    for engine, _ in engines.values():
        engine.close()
    with open(cases_path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{source}: {len(doc['cases'])} cases, {counts}")


def main(sources=None):
    sources = sources or sorted(
        os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(FIXTURES, "*", "cases.json"))
    )
    for source in sources:
        regenerate(source)


if __name__ == "__main__":
    main(sys.argv[1:])
