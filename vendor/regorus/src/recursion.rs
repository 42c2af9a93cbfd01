// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

#![allow(
    clippy::pattern_type_mismatch,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // node ids index vectors built in this module; depths are bounded by reference lengths

//! Compile-time recursion check.
//!
//! Rego does not allow recursion: OPA rejects a policy whose rule dependency
//! graph has a cycle with `rego_recursion_error: rule <path> is recursive:
//! <path> -> ... -> <path>`. This module builds the same graph (a rule or
//! function depends on every rule whose path overlaps a reference in its
//! heads, bodies, `else` branches or default value) and rejects cycles before
//! either evaluator runs the policy.

use crate::ast::*;
use crate::lexer::Span;
use crate::scheduler::Schedule;
use crate::utils::format_string_path;
use crate::*;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString as _};
use alloc::vec::Vec;

use anyhow::{anyhow, Result};

/// A path component of a reference: `None` when it is not known statically
/// (e.g. `data.pkg[x]`) and therefore matches any rule at that position.
type RefComponent = Option<String>;

/// Splits a reference into its root variable and its components.
/// Index expressions that are not string literals are pushed to `pending` so
/// that the references they contain are visited too.
fn split_ref<'a>(
    mut expr: &'a Expr,
    pending: &mut Vec<&'a Expr>,
) -> (Option<&'a Span>, Vec<RefComponent>) {
    let mut components = Vec::new();
    loop {
        match expr {
            Expr::Var { span, .. } => {
                components.reverse();
                return (Some(span), components);
            }
            Expr::RefDot { refr, field, .. } => {
                components.push(Some(field.0.text().to_string()));
                expr = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => {
                        components.push(value.as_string().ok().map(|s| s.as_ref().to_string()));
                    }
                    // Scalars index data by their text (`data.x[1]` reads `data.x["1"]`).
                    Expr::Number { span, .. }
                    | Expr::Bool { span, .. }
                    | Expr::Null { span, .. } => {
                        components.push(Some(span.text().to_string()));
                    }
                    index => {
                        components.push(None);
                        pending.push(index);
                    }
                }
                expr = refr;
            }
            other => {
                pending.push(other);
                components.reverse();
                return (None, components);
            }
        }
    }
}

/// Statically known path components of a rule head or package reference, up
/// to the first component that is not a string.
fn static_path(expr: &Expr) -> Vec<String> {
    let mut ignored = Vec::new();
    let (root, components) = split_ref(expr, &mut ignored);
    let mut path = Vec::new();
    if let Some(root) = root {
        path.push(root.text().to_string());
        path.extend(components.into_iter().map_while(|c| c));
    }
    path
}

#[derive(Default)]
struct TrieNode {
    children: BTreeMap<String, usize>,
    rule: Option<usize>,
}

/// Rule paths, organised as a tree so that references can be matched without
/// comparing against every rule.
struct RuleTree {
    nodes: Vec<TrieNode>,
}

impl RuleTree {
    fn new() -> Self {
        Self {
            nodes: vec![TrieNode::default()],
        }
    }

    fn insert(&mut self, path: &[String], rule: usize) {
        let mut node = 0;
        for component in path {
            node = match self.nodes[node].children.get(component) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.insert(component.clone(), child);
                    child
                }
            };
        }
        self.nodes[node].rule = Some(rule);
    }

    /// Adds every rule that a reference reads: rules whose path is a prefix
    /// of the reference, and rules whose path extends it.
    fn matches(&self, reference: &[RefComponent], out: &mut BTreeSet<usize>) {
        let mut stack = vec![(0_usize, 0_usize)];
        while let Some((node, depth)) = stack.pop() {
            let n = &self.nodes[node];
            if let Some(rule) = n.rule {
                out.insert(rule);
            }
            match reference.get(depth) {
                None => {
                    // The reference reads this whole subtree.
                    let mut subtree: Vec<usize> = n.children.values().copied().collect();
                    while let Some(child) = subtree.pop() {
                        let c = &self.nodes[child];
                        if let Some(rule) = c.rule {
                            out.insert(rule);
                        }
                        subtree.extend(c.children.values().copied());
                    }
                }
                Some(Some(component)) => {
                    if let Some(&child) = n.children.get(component) {
                        stack.push((child, depth + 1));
                    }
                }
                Some(None) => {
                    // A dynamic component (`data[x]`) could select any
                    // child. Policies use such lookups to dispatch to other
                    // packages, so they are not treated as reading every
                    // rule below; the evaluators check such recursion when
                    // it happens.
                }
            }
        }
    }
}

struct RuleInfo {
    path: Vec<String>,
    is_function: bool,
    span: Span,
    definitions: Vec<(usize, Ref<Rule>)>,
}

/// Returns an error naming the cycle when a rule or function depends on
/// itself, directly or through other rules, functions or packages.
pub fn check_recursion(modules: &[Ref<Module>], schedule: Option<&Schedule>) -> Result<()> {
    // Collect rule paths. All definitions of one path are one node.
    let mut rules: Vec<RuleInfo> = Vec::new();
    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut package_names: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let mut package_paths = Vec::with_capacity(modules.len());
    for (module_idx, module) in modules.iter().enumerate() {
        let mut package = vec!["data".to_string()];
        package.extend(static_path(&module.package.refr));
        let names = package_names.entry(package.clone()).or_default();
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Default { refr, .. } => refr,
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => refr,
                },
            };
            let head_path = static_path(refr);
            let Some(root) = head_path.first() else {
                continue;
            };
            names.insert(root.clone());
            let mut path = package.clone();
            path.extend(head_path);
            let is_function = match rule.as_ref() {
                Rule::Default { args, .. } => !args.is_empty(),
                Rule::Spec { head, .. } => matches!(head, RuleHead::Func { .. }),
            };
            let id = *index.entry(path.clone()).or_insert_with(|| {
                rules.push(RuleInfo {
                    path,
                    is_function,
                    span: rule.span().clone(),
                    definitions: Vec::new(),
                });
                rules.len() - 1
            });
            rules[id].definitions.push((module_idx, rule.clone()));
        }
        package_paths.push(package);
    }

    let mut tree = RuleTree::new();
    for (id, info) in rules.iter().enumerate() {
        tree.insert(&info.path, id);
    }

    // Import aliases per module: alias -> absolute path.
    let imports: Vec<BTreeMap<String, Vec<String>>> = modules
        .iter()
        .map(|module| {
            let mut aliases = BTreeMap::new();
            for import in &module.imports {
                let path = static_path(&import.refr);
                if path.first().map(String::as_str) != Some("data") {
                    continue;
                }
                let alias = match &import.r#as {
                    Some(alias) => alias.text().to_string(),
                    None => match path.last() {
                        Some(last) => last.clone(),
                        None => continue,
                    },
                };
                aliases.insert(alias, path);
            }
            aliases
        })
        .collect();

    let function_ids: BTreeSet<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, info)| info.is_function)
        .map(|(id, _)| id)
        .collect();

    // Dependencies of each node.
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); rules.len()];
    for (id, info) in rules.iter().enumerate() {
        let mut deps = BTreeSet::new();
        for (module_idx, rule) in &info.definitions {
            let module_idx = *module_idx;
            let locals = local_names(rule, module_idx, schedule);
            let package = &package_paths[module_idx];
            let rule_names = package_names.get(package);
            let aliases = &imports[module_idx];

            let mut resolve = |root: &Span, components: Vec<RefComponent>, is_call: bool| {
                let name = root.text();
                if locals.contains(name) {
                    return;
                }
                let mut candidates: Vec<Vec<RefComponent>> = Vec::new();
                if name == "data" {
                    candidates.push(vec![Some("data".to_string())]);
                } else {
                    if let Some(path) = aliases.get(name) {
                        candidates.push(path.iter().cloned().map(Some).collect());
                    }
                    if rule_names.is_some_and(|names| names.contains(name)) {
                        let mut path: Vec<RefComponent> =
                            package.iter().cloned().map(Some).collect();
                        path.push(Some(name.to_string()));
                        candidates.push(path);
                    }
                }
                for mut candidate in candidates {
                    candidate.extend(components.iter().cloned());
                    if is_call {
                        // A call refers to a function, or to a builtin when
                        // no function has that path.
                        let mut matched = BTreeSet::new();
                        tree.matches(&candidate, &mut matched);
                        deps.extend(matched.into_iter().filter(|&r| function_ids.contains(&r)));
                    } else {
                        tree.matches(&candidate, &mut deps);
                    }
                }
            };
            visit_rule(rule, &mut resolve);
        }
        edges[id] = deps;
    }

    // Depth-first search with an explicit stack; a back edge closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    let mut state = vec![State::New; rules.len()];
    for start in 0..rules.len() {
        if state[start] != State::New {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        state[start] = State::Active;
        stack.push((start, edges[start].iter().rev().copied().collect()));
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) => match state[next] {
                    State::New => {
                        state[next] = State::Active;
                        stack.push((next, edges[next].iter().rev().copied().collect()));
                    }
                    State::Active => {
                        let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        return Err(recursion_error(&rules, &cycle));
                    }
                    State::Done => {}
                },
                None => {
                    state[node] = State::Done;
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}

fn recursion_error(rules: &[RuleInfo], cycle: &[usize]) -> anyhow::Error {
    let name = |id: usize| {
        let components: Vec<&str> = rules[id].path.iter().map(String::as_str).collect();
        format_string_path(&components).unwrap_or_else(|_| components.join("."))
    };
    let first = cycle.first().copied().unwrap_or_default();
    let names: Vec<String> = cycle.iter().map(|&id| name(id)).collect();
    let span = &rules[first].span;
    anyhow!(span.message(
        "rego_recursion_error",
        &format!("rule {} is recursive: {}", name(first), names.join(" -> ")),
    ))
}

/// Names that are local variables somewhere in the rule and so do not refer
/// to rules of the package.
fn local_names(
    rule: &Ref<Rule>,
    module_idx: usize,
    schedule: Option<&Schedule>,
) -> BTreeSet<String> {
    let mut locals = BTreeSet::new();
    let mut queries = Vec::new();
    let mut exprs: Vec<&Expr> = Vec::new();
    match rule.as_ref() {
        Rule::Spec { head, bodies, .. } => {
            if let RuleHead::Func { args, .. } = head {
                exprs.extend(args.iter().map(|a| a.as_ref()));
                // Every variable in an argument is local to the function.
                while let Some(e) = exprs.pop() {
                    match e {
                        Expr::Var { span, .. } => {
                            locals.insert(span.text().to_string());
                        }
                        Expr::Array { items, .. } | Expr::Set { items, .. } => {
                            exprs.extend(items.iter().map(|i| i.as_ref()));
                        }
                        Expr::Object { fields, .. } => {
                            exprs.extend(fields.iter().map(|(_, _, v)| v.as_ref()));
                        }
                        _ => {}
                    }
                }
            }
            queries.extend(bodies.iter().map(|b| b.query.clone()));
        }
        Rule::Default { .. } => {}
    }
    // Nested queries (comprehensions, every) have their own scopes.
    let mut nested = Vec::new();
    collect_queries(rule, &mut nested);
    queries.extend(nested);
    for query in &queries {
        if let Some(schedule) = schedule {
            if let Ok(Some(qs)) = schedule
                .queries
                .get_checked(u32::try_from(module_idx).unwrap_or(u32::MAX), query.qidx)
            {
                locals.extend(qs.scope.locals.keys().map(|k| k.text().to_string()));
            }
        }
        for stmt in &query.stmts {
            match &stmt.literal {
                Literal::SomeVars { vars, .. } => {
                    locals.extend(vars.iter().map(|v| v.text().to_string()));
                }
                Literal::Every { key, value, .. } => {
                    if let Some(key) = key {
                        locals.insert(key.text().to_string());
                    }
                    locals.insert(value.text().to_string());
                }
                Literal::Expr { expr, .. } => {
                    // `x := ...` declares `x`, even where it shadows a rule or `data`.
                    if let Expr::AssignExpr {
                        op: AssignOp::ColEq,
                        lhs,
                        ..
                    } = expr.as_ref()
                    {
                        let mut pending: Vec<&Expr> = vec![lhs];
                        while let Some(e) = pending.pop() {
                            match e {
                                Expr::Var { span, .. } => {
                                    locals.insert(span.text().to_string());
                                }
                                Expr::Array { items, .. } => {
                                    pending.extend(items.iter().map(|i| i.as_ref()));
                                }
                                Expr::Object { fields, .. } => {
                                    pending.extend(fields.iter().map(|(_, _, v)| v.as_ref()));
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    locals
}

fn collect_queries(rule: &Ref<Rule>, out: &mut Vec<Ref<Query>>) {
    walk_rule(rule, &mut |_, _, _| {}, &mut |q| out.push(q.clone()));
}

fn visit_rule(rule: &Ref<Rule>, on_ref: &mut dyn FnMut(&Span, Vec<RefComponent>, bool)) {
    walk_rule(rule, on_ref, &mut |_| {});
}

/// The head reference names the rule; only its index expressions are read.
fn head_index<'a>(refr: &'a Expr, exprs: &mut Vec<&'a Expr>) {
    let mut indices = Vec::new();
    let _ = split_ref(refr, &mut indices);
    exprs.extend(
        indices
            .into_iter()
            .filter(|e| !matches!(e, Expr::Var { .. })),
    );
}

/// Visits every reference in a rule (heads, bodies, else branches, default
/// value, comprehensions, `every`, `with` values) without recursion. The
/// flag passed to `on_ref` tells whether the reference is called as a function.
fn walk_rule(
    rule: &Ref<Rule>,
    on_ref: &mut dyn FnMut(&Span, Vec<RefComponent>, bool),
    on_nested_query: &mut dyn FnMut(&Ref<Query>),
) {
    let mut exprs: Vec<&Expr> = Vec::new();
    let mut queries: Vec<&Ref<Query>> = Vec::new();
    match rule.as_ref() {
        Rule::Spec { head, bodies, .. } => {
            match head {
                RuleHead::Compr { refr, assign, .. } => {
                    head_index(refr, &mut exprs);
                    if let Some(assign) = assign {
                        exprs.push(&assign.value);
                    }
                }
                RuleHead::Set { refr, key, .. } => {
                    head_index(refr, &mut exprs);
                    if let Some(key) = key {
                        exprs.push(key);
                    }
                }
                RuleHead::Func {
                    refr, args, assign, ..
                } => {
                    head_index(refr, &mut exprs);
                    exprs.extend(args.iter().map(|a| a.as_ref()));
                    if let Some(assign) = assign {
                        exprs.push(&assign.value);
                    }
                }
            }
            for body in bodies {
                if let Some(assign) = &body.assign {
                    exprs.push(&assign.value);
                }
                queries.push(&body.query);
            }
        }
        Rule::Default { value, args, .. } => {
            exprs.push(value);
            exprs.extend(args.iter().map(|a| a.as_ref()));
        }
    }

    let mut nested: Vec<&Ref<Query>> = Vec::new();
    loop {
        if let Some(expr) = exprs.pop() {
            match expr {
                Expr::String { .. }
                | Expr::RawString { .. }
                | Expr::Number { .. }
                | Expr::Bool { .. }
                | Expr::Null { .. } => {}
                Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                    let (root, components) = split_ref(expr, &mut exprs);
                    if let Some(root) = root {
                        on_ref(root, components, false);
                    }
                }
                Expr::Array { items, .. } | Expr::Set { items, .. } => {
                    exprs.extend(items.iter().map(|i| i.as_ref()));
                }
                Expr::Object { fields, .. } => {
                    for (_, k, v) in fields {
                        exprs.push(k);
                        exprs.push(v);
                    }
                }
                Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                    exprs.push(term);
                    nested.push(query);
                }
                Expr::ObjectCompr {
                    key, value, query, ..
                } => {
                    exprs.push(key);
                    exprs.push(value);
                    nested.push(query);
                }
                Expr::Call { fcn, params, .. } => {
                    let (root, components) = split_ref(fcn, &mut exprs);
                    if let Some(root) = root {
                        on_ref(root, components, true);
                    }
                    exprs.extend(params.iter().map(|p| p.as_ref()));
                }
                Expr::UnaryExpr { expr, .. } => exprs.push(expr),
                Expr::BinExpr { lhs, rhs, .. }
                | Expr::BoolExpr { lhs, rhs, .. }
                | Expr::ArithExpr { lhs, rhs, .. }
                | Expr::AssignExpr { lhs, rhs, .. } => {
                    exprs.push(lhs);
                    exprs.push(rhs);
                }
                #[cfg(feature = "rego-extensions")]
                Expr::OrExpr { lhs, rhs, .. } => {
                    exprs.push(lhs);
                    exprs.push(rhs);
                }
                Expr::Membership {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(key) = key {
                        exprs.push(key);
                    }
                    exprs.push(value);
                    exprs.push(collection);
                }
            }
            continue;
        }
        let query = match nested.pop() {
            Some(query) => {
                on_nested_query(query);
                query
            }
            None => match queries.pop() {
                Some(query) => query,
                None => break,
            },
        };
        for stmt in &query.stmts {
            // The target of `with` is replaced, not read; its value is read.
            exprs.extend(stmt.with_mods.iter().map(|w| w.r#as.as_ref()));
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(key) = key {
                        exprs.push(key);
                    }
                    exprs.push(value);
                    exprs.push(collection);
                }
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => exprs.push(expr),
                Literal::Every {
                    domain,
                    query: every_query,
                    ..
                } => {
                    exprs.push(domain);
                    nested.push(every_query);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::use_debug,
    clippy::shadow_unrelated,
    clippy::panic_in_result_fn
)]
mod tests {
    use crate::*;
    use alloc::string::ToString as _;
    use anyhow::Result;

    fn engine(policy: &str) -> Result<Engine> {
        let mut engine = Engine::new();
        engine.add_policy("test.rego".to_string(), policy.to_string())?;
        Ok(engine)
    }

    fn expect_recursion_error(result: Result<impl core::fmt::Debug>, cycle: &str) {
        match result {
            Ok(value) => panic!("expected a recursion error, got {value:?}"),
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.contains("rego_recursion_error"), "{msg}");
                assert!(msg.contains(cycle), "{msg}");
            }
        }
    }

    // A recursive function used to overflow the native stack of the
    // interpreter, and recursive rules that of the VM. Run on a 2 MiB stack,
    // the size of a test or tokio worker thread.
    #[test]
    fn recursion_is_rejected_before_either_evaluator_runs() {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| -> Result<()> {
                let function = "package test\nf(x) := y if { y := f(x) }\nr := f(1)\n";
                let cycle = "rule data.test.f is recursive: data.test.f -> data.test.f";
                expect_recursion_error(engine(function)?.eval_rule("data.test.r".to_string()), cycle);
                expect_recursion_error(
                    engine(function)?.eval_query("data.test.r".to_string(), false),
                    cycle,
                );
                expect_recursion_error(
                    engine(function)?.compile_with_entrypoint(&"data.test.r".into()),
                    cycle,
                );

                let rules = "package test\na := b\nb := c\nc := a\n";
                let cycle = "rule data.test.a is recursive: data.test.a -> data.test.b -> data.test.c -> data.test.a";
                expect_recursion_error(engine(rules)?.eval_rule("data.test.a".to_string()), cycle);
                expect_recursion_error(
                    engine(rules)?.compile_with_entrypoint(&"data.test.a".into()),
                    cycle,
                );
                Ok(())
            })
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn non_recursive_rules_sharing_a_prefix_compile() -> Result<()> {
        let policy = "package test\nab := 1\na := ab + 1\np.q := 1\np.r := p.q + a\n";
        let mut engine = engine(policy)?;
        assert_eq!(
            engine.eval_rule("data.test.p.r".to_string())?,
            Value::from(3)
        );
        #[cfg(feature = "rvm")]
        {
            let policy = engine.compile_with_entrypoint(&"data.test.p.r".into())?;
            crate::languages::rego::compiler::Compiler::compile_from_policy(
                &policy,
                &["data.test.p.r"],
            )?;
        }
        Ok(())
    }
}
