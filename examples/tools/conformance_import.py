#!/usr/bin/env python3
"""Build fixtures/conformance/<source>/ from a git checkout of a public Rego
repository (not part of CI; run once per source, then commit the fixtures).

    python3 examples/tools/conformance_import.py trivy-checks GITDIR [COMMIT]
    python3 examples/tools/conformance_import.py gatekeeper-library GITDIR [COMMIT]
    python3 examples/tools/conformance_import.py rego-policies GITDIR [COMMIT]

GITDIR is a (bare) git directory of the repository; files are read with
`git show COMMIT:PATH`. Inputs written as Rego literals in a source's tests
are turned into JSON by evaluating them with OPA itself (the bindings, see
conformance_with_opa.py), so that script must be importable and
OPA_BINDINGS_PATH set. The expected answers are then filled in by
conformance_with_opa.py, which this script calls at the end.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance_with_opa as opa  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures", "conformance")


class Repo:
    def __init__(self, gitdir, commit):
        self.gitdir = gitdir
        self.commit = subprocess.check_output(
            ["git", "--git-dir", gitdir, "rev-parse", commit], text=True
        ).strip()

    def files(self, under=""):
        out = subprocess.check_output(
            ["git", "--git-dir", self.gitdir, "ls-tree", "-r", "--name-only", self.commit] + ([under] if under else []),
            text=True,
        )
        return out.split("\n")[:-1]

    def read(self, path):
        return subprocess.check_output(
            ["git", "--git-dir", self.gitdir, "show", f"{self.commit}:{path}"], text=True
        )


def package_of(source):
    m = re.search(r"^package\s+([\w.]+)", source, re.M)
    return m.group(1)


def match_bracket(text, i):
    """Index just past the bracketed expression starting at text[i]."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    stack = []
    in_str = False
    j = i
    while j < len(text):
        c = text[j]
        if in_str:
            if c == "\\":
                j += 1
            elif c == in_str:
                in_str = False
        elif c in "\"`":
            in_str = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                return None
            if not stack:
                return j + 1
        j += 1
    return None


def expression_at(text, i):
    """The Rego term starting at text[i]: a literal, a name, or a call."""
    m = re.compile(r"[\w.]+").match(text, i)
    if text[i] in "{[":
        end = match_bracket(text, i)
        return None if end is None else text[i:end]
    if not m:
        return None
    end = m.end()
    if end < len(text) and text[end] in "([":
        close = match_bracket(text, end)
        if close is None:
            return None
        end = close
    return text[i:end]


def test_inputs(test_source):
    """Each `with input as EXPR` of a test module, as an expression that can
    stand alone in the package: a literal or call as written, or for a local
    name the literal it was assigned in the same rule."""
    found = []
    for m in re.finditer(r"with\s+input\s+as\s+", test_source):
        expr = expression_at(test_source, m.end())
        if expr is None:
            continue
        if re.fullmatch(r"\w+", expr):
            # the nearest `expr := ...` before the use
            before = test_source[: m.start()]
            defs = list(re.finditer(r"\b" + re.escape(expr) + r"\s*:=\s*", before))
            if not defs:
                continue
            expr = expression_at(test_source, defs[-1].end())
            if expr is None:
                continue
        found.append(expr)
    return found


def eval_inputs(modules, test_path, test_source, exprs):
    """Evaluate each expression in the test's package with OPA; returns the
    JSON values of those that evaluate without error."""
    pkg = package_of(test_source)
    values = []
    for expr in exprs:
        engine = opa.OpaEngine()
        try:
            for path, src in modules:
                engine.add_policy(path, src)
            engine.add_policy(test_path, test_source + f"\n\n__conformance_input := {expr}\n")
            got = opa.evaluate(engine, f"data.{pkg}.__conformance_input", None)
        except Exception:
            continue
        finally:
            engine.close()
        if "result" in got:
            values.append(got["result"])
    return values


def dedup(values):
    seen = set()
    out = []
    for v in values:
        k = json.dumps(v, sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def write_source(name, repo, files, cases, bundles, changed, notes):
    """Write the vendored files, the cases and a PROVENANCE.md skeleton."""
    out = os.path.join(FIXTURES, name)
    used = {m for b in bundles.values() for m in b["modules"] + b.get("data", [])}
    files = {p: t for p, t in files.items() if p in used}  # vendor only what a case uses
    changed = [p for p in changed if p in used]
    seen = {}
    for case in cases:  # a suite may reuse a test or case name
        n = seen.get(case["id"], 0)
        seen[case["id"]] = n + 1
        if n:
            case["id"] += f"#{n}"
    for path, text in files.items():
        dest = os.path.join(out, "files", path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as f:
            f.write(text)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"bundles": bundles, "cases": cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "import.json"), "w") as f:
        json.dump({"commit": repo.commit, "changed": changed, "notes": notes}, f, indent=1)
        f.write("\n")


# --- aquasecurity/trivy-checks ---------------------------------------------

TRIVY_UNSUPPORTED = re.compile(r"\b(sh\.parse_commands|squealer\.scan_string|cidr\.is_public|time\.now_ns|isManaged)\(")
RESULT_SHIM = """package lib.result

# Stands in for trivy's Go builtin result.new(msg, cause), which OPA lacks:
# the result keeps the message only (trivy adds the cause's source location).
new(msg, _) := {"msg": msg}
"""


def with_result_import(source):
    """Route `result.new(...)` to the shim: add `import data.lib.result`
    right after the package line."""
    if "result.new(" not in source:
        return source, False
    return re.sub(r"^(package\s+[\w.]+\n)", r"\1\nimport data.lib.result\n", source, count=1, flags=re.M), True


def imports_closure(files, source, prefix=("lib/", "shim/")):
    """The library modules (paths in `files` under lib/ or shim/) that
    `source` needs, following `import data.X` transitively."""
    by_pkg = {}
    for path, src in files.items():
        if path.startswith(prefix):
            by_pkg.setdefault(package_of(src), []).append(path)
    needed, todo = set(), [source]
    while todo:
        text = todo.pop()
        for imp, alias in re.findall(r"^import\s+data\.([\w.]+)(?:\s+as\s+(\w+))?", text, re.M):
            alias = alias or imp.rsplit(".", 1)[-1]
            for pkg, paths in by_pkg.items():
                # the package itself, one that defines the imported rule,
                # or a sub-package the module names through the import
                sub = pkg[len(imp) + 1:].split(".")[0] if pkg.startswith(imp + ".") else None
                if pkg == imp or imp.startswith(pkg + ".") or (
                    sub and re.search(r"\b" + re.escape(alias) + r"\." + re.escape(sub) + r"\b", text)
                ):
                    for path in paths:
                        if path not in needed:
                            needed.add(path)
                            todo.append(files[path])
    return sorted(needed)


def trivy_bundles(files, cases):
    """One bundle per check: the check and the libraries it imports, so that
    a module regorus cannot compile only fails its own cases."""
    bundles = {}
    for case in cases:
        check = "checks/" + case["id"][len("trivy-checks/"):].rsplit("/", 1)[0] + ".rego"
        case["bundle"] = check
        if check not in bundles:
            bundles[check] = {"modules": imports_closure(files, files[check]) + [check], "data": []}
    return bundles


def import_trivy(repo):
    all_files = repo.files()
    libs = {}
    changed = []
    for p in all_files:
        if p.startswith("lib/") and p.endswith(".rego") and not p.endswith("_test.rego"):
            src = repo.read(p)
            if TRIVY_UNSUPPORTED.search(src):
                continue
            src, ch = with_result_import(src)
            if ch:
                changed.append(p)
            libs[p] = src
    libs["shim/lib/result.rego"] = RESULT_SHIM
    # drop, until OPA compiles the rest, the libraries that need one dropped
    while True:
        engine = opa.OpaEngine()
        for path, src in libs.items():
            engine.add_policy(path, src)
        try:
            opa.evaluate(engine, "data.lib", None)
            break
        except Exception as exc:
            bad = {p for p in libs if p + ":" in str(exc)}
            if not bad:
                raise
            print(f"dropping {sorted(bad)}", file=sys.stderr)
            for p in bad:
                del libs[p]
        finally:
            engine.close()
    lib_pkgs = {package_of(s) for s in libs.values()}
    files = dict(libs)
    bundles = {}
    cases = []
    for p in all_files:
        if not (p.startswith("checks/") and p.endswith(".rego")) or p.endswith("_test.rego"):
            continue
        test_path = p[: -len(".rego")] + "_test.rego"
        if test_path not in all_files:
            continue
        src = repo.read(p)
        if TRIVY_UNSUPPORTED.search(src):
            continue
        imported = set(re.findall(r"^import\s+data\.([\w.]+)", src, re.M))
        if any(i.startswith("lib.") and i not in lib_pkgs for i in imported):
            continue
        if not re.search(r"^deny\s+contains\b", src, re.M):
            continue
        src, ch = with_result_import(src)
        if ch:
            changed.append(p)
        test_src = repo.read(test_path)
        modules = list(libs.items()) + [(p, src)]
        exprs = test_inputs(test_src)
        inputs = dedup(eval_inputs(modules, test_path, test_src, exprs))
        if not inputs:
            continue
        pkg = package_of(src)
        files[p] = src
        stem = os.path.splitext(p[len("checks/"):])[0]
        for i, inp in enumerate(inputs):
            cases.append({
                "id": f"trivy-checks/{stem}/{i}",
                "bundle": p,
                "query": f"data.{pkg}.deny",
                "unordered": True,
                "input": inp,
            })
        print(f"{p}: {len(inputs)} of {len(exprs)} inputs", file=sys.stderr)
    bundles = trivy_bundles(files, cases)
    write_source("trivy-checks", repo, files, cases, bundles, changed,
                 "lib/ modules and checks that call trivy-only builtins are left out")
    return cases


# --- Rego v0 -> v1 ---------------------------------------------------------

def head_split(line):
    """For a line that starts a rule at column 0, the index of the `{` that
    opens its body (the first `{` outside brackets and strings that is not a
    value after `=`/`:=`), or None."""
    depth = 0
    in_str = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == in_str:
                in_str = False
        elif c in "\"`":
            in_str = c
        elif c == "#":
            return None
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "{" and depth == 0:
            before = line[:i].rstrip()
            if before == "" or before.endswith(","):
                return None
            if before.endswith("="):
                depth += 1  # an object or set value, not a body
            else:
                return i
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return None


def v0_to_v1(source):
    """Rewrite a Rego v0 module in v1 syntax, the way `opa fmt --v0-v1` does
    for the forms these libraries use: `if` before every rule body, and
    `contains` for partial set rules (`p[x] { .. }` -> `p contains x if { .. }`).
    Only rule heads at column 0 (and `} else ... {` lines) are touched; the
    result is checked by parsing it with OPA."""
    out = []
    for line in source.split("\n"):
        stripped = line.rstrip()
        if re.match(r"^\}\s*else\b", stripped):
            i = head_split(stripped[1:])
            if i is not None:
                i += 1
                line = stripped[:i].rstrip() + " if " + stripped[i:]
            out.append(line)
            continue
        if not re.match(r"^[A-Za-z_][\w.]*", stripped) or re.match(r"^(package|import|default)\b", stripped):
            out.append(line)
            continue
        i = head_split(stripped)
        if i is None:
            m = re.fullmatch(r"([A-Za-z_]\w*)\[(.*)\]", stripped)
            # a partial set rule without a body: `p[x]`
            out.append(f"{m.group(1)} contains {m.group(2)}" if m else line)
            continue
        head = stripped[:i].rstrip()
        body = stripped[i:]
        m = re.fullmatch(r"([A-Za-z_]\w*)\[(.*)\]", head)
        if m:
            head = f"{m.group(1)} contains {m.group(2)}"
        if not head.endswith(" if"):
            head += " if"
        # a one-line `p = x { .. } else = y { .. }`
        body = re.sub(r"\}(\s*)else(\s*:?=\s*[^{}]*?)?\s*\{",
                      lambda m: m.group(0) if re.search(r"\bif\s*\{$", m.group(0))
                      else m.group(0)[:-1].rstrip() + " if {", body)
        out.append(head + " " + body)
    return "\n".join(out)


NETWORK = re.compile(r"\b(http\.send|net\.lookup_ip_addr)\(")


def opa_parse_error(modules):
    """Why OPA cannot compile `modules`, or None. Modules that could reach
    the network are refused before OPA sees them."""
    for path, src in modules:
        if NETWORK.search(src):
            return f"{path}: calls a builtin that uses the network"
    engine = opa.OpaEngine()
    try:
        for path, src in modules:
            engine.add_policy(path, src)
        opa.evaluate(engine, "data", None)
        return None
    except Exception as exc:
        return str(exc)
    finally:
        engine.close()


# --- open-policy-agent/gatekeeper-library ----------------------------------

def template_rego(template):
    """The Rego source and libs of a ConstraintTemplate (either form)."""
    for target in template["spec"]["targets"]:
        if target.get("rego"):
            return target["rego"], target.get("libs") or []
        for code in target.get("code") or []:
            if code.get("engine") == "Rego":
                src = code["source"]
                return src["rego"], src.get("libs") or []
    return None, []


def gatekeeper_review(obj, operation="CREATE"):
    """The admission review gatekeeper's gator hands a template for an object."""
    api = obj.get("apiVersion", "v1")
    group, _, version = api.rpartition("/")
    meta = obj.get("metadata") or {}
    review = {
        "kind": {"group": group, "version": version, "kind": obj.get("kind", "")},
        "name": meta.get("name", ""),
        "operation": operation,
        "object": obj,
    }
    if "namespace" in meta:
        review["namespace"] = meta["namespace"]
    return review


def import_gatekeeper(repo):
    import yaml

    files, bundles, cases, changed, dropped = {}, {}, [], [], []
    all_files = set(repo.files("library"))
    for suite_path in sorted(p for p in all_files if p.endswith("/suite.yaml")):
        base = os.path.dirname(suite_path)
        suite = yaml.safe_load(repo.read(suite_path))
        for test in suite.get("tests") or []:
            tpath = os.path.normpath(os.path.join(base, test["template"]))
            if tpath not in all_files:
                continue
            template = yaml.safe_load(repo.read(tpath))
            rego, libs = template_rego(template)
            if rego is None:
                continue
            name = template["metadata"]["name"]
            if name not in bundles:
                mods = [(f"{os.path.dirname(tpath)}/src.rego", rego)] + [
                    (f"{os.path.dirname(tpath)}/lib_{i}.rego", lib) for i, lib in enumerate(libs)
                ]
                converted = [(p, v0_to_v1(s)) for p, s in mods]
                err = opa_parse_error(converted)
                if err is not None:
                    dropped.append(f"{tpath}: {err.splitlines()[0][:200]}")
                    print(f"drop {tpath}: {err[:300]}", file=sys.stderr)
                    bundles[name] = None
                    continue
                for p, s in converted:
                    files[p] = s + ("" if s.endswith("\n") else "\n")
                    changed.append(p)
                bundles[name] = {"modules": [p for p, _ in converted], "data": []}
            if bundles[name] is None:
                continue
            pkg = package_of(files[bundles[name]["modules"][0]])
            cpath = os.path.normpath(os.path.join(base, test["constraint"]))
            constraint = yaml.safe_load(repo.read(cpath)) if cpath in all_files else {}
            params = (constraint.get("spec") or {}).get("parameters") or {}
            for c in test.get("cases") or []:
                opath = os.path.normpath(os.path.join(base, c["object"]))
                if opath not in all_files:
                    continue
                for k, obj in enumerate(d for d in yaml.safe_load_all(repo.read(opath)) if d):
                    inp = {"review": gatekeeper_review(obj), "parameters": params}
                    cid = f"gatekeeper-library/{name}/{test['name']}/{c['name']}" + (f"/{k}" if k else "")
                    cases.append({"id": cid, "bundle": name, "query": f"data.{pkg}.violation",
                                  "unordered": True, "input": inp})
    bundles = {k: v for k, v in bundles.items() if v is not None}
    write_source("gatekeeper-library", repo, files, cases, bundles, changed,
                 {"dropped": dropped})
    return cases


# --- redhat-cop/rego-policies ----------------------------------------------

def import_rego_policies(repo):
    import yaml

    all_files = repo.files("policy")
    libs = {}
    for p in all_files:
        if p.startswith("policy/lib/") and p.endswith(".rego") and not p.endswith("_test.rego"):
            libs[p] = v0_to_v1(repo.read(p))
    inventory = "policy/ocp/requiresinventory/data_inventory.rego"
    libs[inventory] = v0_to_v1(repo.read(inventory))
    err = opa_parse_error(list(libs.items()))
    if err:
        raise SystemExit(f"libs: {err}")
    files = dict(libs)
    changed = sorted(libs)
    bundles, cases, dropped = {}, [], []
    for p in sorted(all_files):
        if not p.endswith("/src.rego") or p.startswith("policy/lib/"):
            continue
        d = os.path.dirname(p)
        src = v0_to_v1(repo.read(p))
        err = opa_parse_error(list(libs.items()) + [(p, src)])
        if err:
            dropped.append(f"{p}: {err.splitlines()[0][:200]}")
            print(f"drop {p}: {err[:300]}", file=sys.stderr)
            continue
        inputs = []
        for t in sorted(f for f in all_files if f.startswith(d + "/test_data/") and f.endswith((".yml", ".yaml"))):
            for doc in yaml.safe_load_all(repo.read(t)):
                if not doc:
                    continue
                # conftest's tests split a List into its items
                inputs.extend(doc["items"] if doc.get("kind") == "List" else [doc])
        inputs = dedup(inputs)
        if not inputs:
            continue
        files[p] = src
        changed.append(p)
        name = d[len("policy/"):]
        bundles[name] = {"modules": sorted(libs) + [p], "data": []}
        pkg = package_of(src)
        for i, inp in enumerate(inputs):
            cases.append({"id": f"rego-policies/{name}/{i}", "bundle": name,
                          "query": f"data.{pkg}.violation", "unordered": True, "input": inp})
    write_source("rego-policies", repo, files, cases, bundles, changed, {"dropped": dropped})
    return cases


# --- open-policy-agent/conftest examples -----------------------------------

def import_conftest(repo):
    import yaml

    all_files = repo.files("examples")
    files, bundles, cases, dropped = {}, {}, [], []
    examples = sorted({p.split("/")[1] for p in all_files if p.count("/") >= 2})
    for ex in examples:
        mine = [p for p in all_files if p.startswith(f"examples/{ex}/")]
        mods = [(p, repo.read(p)) for p in mine if p.endswith(".rego") and not p.endswith("_test.rego")]
        if not mods:
            continue
        err = opa_parse_error(mods)
        if err:
            dropped.append(f"examples/{ex}: {err.splitlines()[0][:200]}")
            print(f"drop {ex}: {err[:300]}", file=sys.stderr)
            continue
        queries = sorted({
            f"data.{package_of(src)}.{rule}"
            for _, src in mods
            for rule in re.findall(r"^(deny|warn|violation|allow)\b", src, re.M)
        })
        if not queries:
            continue
        inputs = []
        for p in sorted(mine):
            if "/policy/" in p:
                continue
            try:
                if p.endswith((".yaml", ".yml")):
                    inputs.extend(d for d in yaml.safe_load_all(repo.read(p)) if isinstance(d, dict))
                elif p.endswith(".json") and not p.endswith("capabilities.json"):
                    inputs.append(json.loads(repo.read(p)))
            except Exception as exc:
                print(f"skip {p}: {exc}", file=sys.stderr)
        for p in mine:
            if p.endswith("_test.rego"):
                t = repo.read(p)
                inputs.extend(eval_inputs(mods, p, t, test_inputs(t)))
        inputs = dedup(i for i in inputs if isinstance(i, (dict, list)))
        if not inputs:
            continue
        for p, src in mods:
            files[p] = src
        bundles[ex] = {"modules": [p for p, _ in mods], "data": []}
        for i, inp in enumerate(inputs):
            for q in queries:
                rule = q.rsplit(".", 1)[1]
                cases.append({"id": f"conftest/{ex}/{i}/{q[len('data.'):]}", "bundle": ex, "query": q,
                              "unordered": rule != "allow", "input": inp})
    write_source("conftest", repo, files, cases, bundles, [], {"dropped": dropped})
    return cases


# --- fugue/regula ----------------------------------------------------------

DEPRECATED_SHIM = """package conformance.deprecated

# OPA v1 removed the builtins all() and any(), which regula's library calls;
# these functions give their results (written for this corpus).
all(xs) := count([x | some x in xs; x != true]) == 0

any(xs) := count([x | some x in xs; x == true]) > 0
"""


def without_deprecated(source):
    """Rewrite the builtins OPA v1 removed: re_match -> regex.match (the
    same function), all()/any() -> the shim above."""
    out = re.sub(r"(?<![\w.])re_match\(", "regex.match(", source)
    new = re.sub(r"(?<![\w.])(all|any)\(", r"deprecated.\1(", out)
    if new != out:
        new = re.sub(r"^(package\s+[\w.]+\n)", r"\1\nimport data.conformance.deprecated\n", new, count=1, flags=re.M)
    return new


def import_regula(repo):
    all_files = repo.files("rego")
    convert = lambda p: without_deprecated(v0_to_v1(repo.read(p)))  # noqa: E731
    libs = {p: convert(p) for p in all_files
            if p.startswith("rego/lib/") and p.endswith(".rego") and not p.endswith("_test.rego")}
    libs["rego/lib/conformance/deprecated.rego"] = DEPRECATED_SHIM
    err = opa_parse_error(list(libs.items()))
    if err:
        raise SystemExit(f"libs: {err}")
    files = dict(libs)
    changed = sorted(libs)
    input_cache = {}
    input_modules = {}
    for p in all_files:
        if p.startswith("rego/tests/") and "/inputs/" in p and p.endswith(".rego"):
            input_modules[package_of(repo.read(p))] = p

    def mock_input(pkg):
        if pkg not in input_cache:
            path = input_modules.get(pkg)
            value = None
            if path:
                engine = opa.OpaEngine()
                try:
                    for lp, src in libs.items():
                        engine.add_policy(lp, src)
                    engine.add_policy(path, convert(path))
                    value = opa.evaluate(engine, f"data.{pkg}.mock_input", None).get("result")
                except Exception as exc:
                    print(f"input {pkg}: {str(exc)[:200]}", file=sys.stderr)
                finally:
                    engine.close()
            input_cache[pkg] = value
        return input_cache[pkg]

    bundles, cases, dropped = {}, [], []
    for p in sorted(all_files):
        if not (p.startswith("rego/rules/") and p.endswith(".rego")):
            continue
        test_path = "rego/tests/rules/" + p[len("rego/rules/"):-len(".rego")] + "_test.rego"
        if test_path not in all_files:
            continue
        src = convert(p)
        err = opa_parse_error(list(libs.items()) + [(p, src)])
        if err:
            dropped.append(f"{p}: {err.splitlines()[0][:200]}")
            print(f"drop {p}: {err[:300]}", file=sys.stderr)
            continue
        test_src = repo.read(test_path)
        # `import data.tests.rules.<dir>.inputs` then `inputs.X.mock_...`, or
        # `import data.tests.rules.<dir>.inputs.X [as alias]`
        wanted = set()
        for m in re.finditer(r"^import\s+data\.(tests\.rules\.[\w.]*?inputs)(?:\.(\w+))?\b", test_src, re.M):
            if m.group(2):
                wanted.add((m.group(2), f"{m.group(1)}.{m.group(2)}"))
            else:
                for n in re.findall(r"\binputs\.(\w+)\.mock_", test_src):
                    wanted.add((n, f"{m.group(1)}.{n}"))
        inputs = [(n, mock_input(pkg)) for n, pkg in sorted(wanted)]
        inputs = [(n, v) for n, v in inputs if isinstance(v, dict)]
        pkg = package_of(src)
        rule_cases = []
        if re.search(r"^policy\s+contains\b", src, re.M):
            for n, inp in inputs:
                rule_cases.append((n, f"data.{pkg}.policy", True, inp))
        else:
            rt = re.search(r'^resource_type\s*:?=\s*"([^"]+)"', src, re.M)
            rule = "allow" if re.search(r"^allow\b", src, re.M) else "deny"
            for n, inp in inputs if rt else []:
                for rid, res in sorted((inp.get("resources") or {}).items()):
                    if isinstance(res, dict) and res.get("_type") == rt.group(1):
                        rule_cases.append((f"{n}/{rid}", f"data.{pkg}.{rule}", False, res))
        if not rule_cases:
            continue
        files[p] = src
        changed.append(p)
        name = p[len("rego/rules/"):-len(".rego")]
        bundles[name] = {"modules": imports_closure(files, src, prefix="rego/lib/") + [p], "data": []}
        for n, q, unordered, inp in rule_cases:
            cases.append({"id": f"regula/{name}/{n}", "bundle": name, "query": q,
                          "unordered": unordered, "input": inp})
    write_source("regula", repo, files, cases, bundles, changed, {"dropped": dropped})
    return cases


def main():
    if sys.argv[1:] == ["trivy-checks", "--rebundle"]:
        # regroup an existing import (no git checkout needed)
        path = os.path.join(FIXTURES, "trivy-checks", "cases.json")
        with open(path) as f:
            doc = json.load(f)
        base = os.path.join(FIXTURES, "trivy-checks", "files")
        files = {}
        for d, _, names in os.walk(base):
            for n in names:
                full = os.path.join(d, n)
                with open(full) as f:
                    files[os.path.relpath(full, base)] = f.read()
        doc["bundles"] = trivy_bundles(files, doc["cases"])
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        opa.main(["trivy-checks"])
        return
    name, gitdir = sys.argv[1], sys.argv[2]
    repo = Repo(gitdir, sys.argv[3] if len(sys.argv) > 3 else "HEAD")
    {"trivy-checks": import_trivy, "gatekeeper-library": import_gatekeeper, "rego-policies": import_rego_policies, "conftest": import_conftest, "regula": import_regula}[name](repo)
    opa.main([name])


if __name__ == "__main__":
    main()
