//! OPA's storage rules for one tenant's pushed data document: writing,
//! removing and patching a JSON tree at a path, as OPA's in-memory store
//! does (parents created by `PUT`, a patch's parent must exist, `-` appends
//! to an array). Pure functions over `serde_json` values: this module knows
//! nothing of bundles, tenants' instances or compiling (overlay.rs does).

use crate::overlay::{PatchKind, PatchOp};
use crate::HostError;
use serde_json::{Map, Value};

/// True when a document exists at `path` in the bundle's data or the
/// pushed data.
pub(crate) fn lookup(base: &Value, pushed: &Map<String, Value>, path: &[String]) -> bool {
    if path.is_empty() {
        return true;
    }
    let mut in_base = Some(base);
    for key in path {
        in_base = in_base.and_then(|v| step(v, key));
    }
    in_base.is_some() || {
        let mut at = pushed.get(&path[0]);
        for key in &path[1..] {
            at = at.and_then(|v| step(v, key));
        }
        at.is_some()
    }
}

pub(crate) fn step<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

pub(crate) fn not_found(tenant: &str, path: &[String]) -> HostError {
    HostError::DocumentNotFound {
        tenant: tenant.to_string(),
        path: format!("/{}", path.join("/")),
    }
}

pub(crate) fn invalid(tenant: &str, reason: String) -> HostError {
    HostError::InvalidWrite {
        tenant: tenant.to_string(),
        reason,
    }
}

/// Creates, in the pushed tree, the empty objects on the way to `parents`
/// that exist as objects only in the bundle's data (above its roots), so a
/// patch can add beside the bundle's documents as it can in OPA's store.
pub(crate) fn mirror_parents(base: &Value, pushed: &mut Map<String, Value>, parents: &[String]) {
    let mut in_base = Some(base);
    let mut at = pushed;
    for key in parents {
        in_base = in_base.and_then(|v| v.get(key.as_str()));
        if !at.contains_key(key) {
            if !in_base.is_some_and(Value::is_object) {
                return;
            }
            at.insert(key.clone(), Value::Object(Map::new()));
        }
        match at.get_mut(key) {
            Some(Value::Object(next)) => at = next,
            _ => return,
        }
    }
}

/// OPA's PUT: replaces the document, creating missing parent objects.
pub(crate) fn put(
    tenant: &str,
    root: &mut Map<String, Value>,
    path: &[String],
    value: Value,
) -> Result<(), HostError> {
    let Some((last, parents)) = path.split_last() else {
        return match value {
            Value::Object(map) => {
                *root = map;
                Ok(())
            }
            _ => Err(invalid(
                tenant,
                "the root data document must be an object".into(),
            )),
        };
    };
    let mut at = root;
    for (i, key) in parents.iter().enumerate() {
        let next = at
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        at = match next {
            Value::Object(map) => map,
            _ => {
                return Err(HostError::WriteConflict {
                    tenant: tenant.to_string(),
                    path: format!("/{}", path[..=i].join("/")),
                })
            }
        };
    }
    at.insert(last.clone(), value);
    Ok(())
}

/// OPA's DELETE: removes the document, which must exist.
pub(crate) fn remove(
    tenant: &str,
    root: &mut Map<String, Value>,
    path: &[String],
) -> Result<(), HostError> {
    let Some((last, parents)) = path.split_last() else {
        if root.is_empty() {
            return Err(not_found(tenant, path));
        }
        root.clear();
        return Ok(());
    };
    if parents.is_empty() {
        return match root.remove(last) {
            Some(_) => Ok(()),
            None => Err(not_found(tenant, path)),
        };
    }
    let parent = parent_mut(root, parents).ok_or_else(|| not_found(tenant, path))?;
    let removed = match parent {
        Value::Object(map) => map.remove(last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(not_found(tenant, path))
    }
}

/// The value at `path` under `root` viewed as an object value.
pub(crate) fn parent_mut<'a>(
    root: &'a mut Map<String, Value>,
    path: &[String],
) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut at = root.get_mut(first)?;
    for key in rest {
        at = match at {
            Value::Object(map) => map.get_mut(key)?,
            Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// One JSON Patch operation with OPA's storage semantics: the parent must
/// exist; `add` sets an object member or inserts into an array (`-`
/// appends); `remove` and `replace` need the target to exist.
pub(crate) fn patch(
    tenant: &str,
    root: &mut Map<String, Value>,
    path: &[String],
    op: &PatchOp,
) -> Result<(), HostError> {
    let Some((last, parents)) = path.split_last() else {
        return match op.kind {
            PatchKind::Remove => remove(tenant, root, path),
            PatchKind::Add | PatchKind::Replace => put(tenant, root, path, op.value.clone()),
        };
    };
    if parents.is_empty() {
        return match op.kind {
            PatchKind::Add => {
                root.insert(last.clone(), op.value.clone());
                Ok(())
            }
            PatchKind::Replace => match root.get_mut(last) {
                Some(slot) => {
                    *slot = op.value.clone();
                    Ok(())
                }
                None => Err(not_found(tenant, path)),
            },
            PatchKind::Remove => remove(tenant, root, path),
        };
    }
    if op.kind == PatchKind::Remove {
        return remove(tenant, root, path);
    }
    let parent = parent_mut(root, parents).ok_or_else(|| not_found(tenant, path))?;
    match (parent, op.kind) {
        (Value::Object(map), PatchKind::Add) => {
            map.insert(last.clone(), op.value.clone());
        }
        (Value::Object(map), PatchKind::Replace) => match map.get_mut(last) {
            Some(slot) => *slot = op.value.clone(),
            None => return Err(not_found(tenant, path)),
        },
        (Value::Array(items), kind) => {
            let index = if last == "-" && kind == PatchKind::Add {
                items.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| invalid(tenant, format!("{last:?} is not an array index")))?
            };
            match kind {
                PatchKind::Add if index <= items.len() => items.insert(index, op.value.clone()),
                PatchKind::Replace if index < items.len() => items[index] = op.value.clone(),
                _ => return Err(not_found(tenant, path)),
            }
        }
        _ => return Err(not_found(tenant, path)),
    }
    Ok(())
}

/// Most levels the pushed data tree may have, counting its top-level
/// members as level 1. OPA has no bound; without one, repeated patches could
/// deepen the tree a hundred levels per request until serializing it (every
/// push measures it) overflowed the stack. Bundles' data files are bounded
/// by serde_json's nesting limit of 128 already; this stays under it, so a
/// persisted copy (persist.rs) always reads back.
pub(crate) const MAX_PUSHED_DEPTH: usize = 120;

/// Refuses a pushed data tree deeper than [`MAX_PUSHED_DEPTH`]. Iterative,
/// so the tree's own depth cannot overflow the stack here.
pub(crate) fn check_depth(tenant: &str, data: &Map<String, Value>) -> Result<(), HostError> {
    let mut stack: Vec<(&Value, usize)> = data.values().map(|v| (v, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        for child in children {
            if depth + 1 > MAX_PUSHED_DEPTH {
                return Err(invalid(
                    tenant,
                    format!("pushed data would be more than {MAX_PUSHED_DEPTH} levels deep"),
                ));
            }
            stack.push((child, depth + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(path: &str) -> Vec<String> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn pushed_data_deeper_than_the_bound_is_refused() {
        let mut root = Map::new();
        let at_bound = vec!["k".to_string(); MAX_PUSHED_DEPTH];
        put("t", &mut root, &at_bound, json!(1)).unwrap();
        check_depth("t", &root).unwrap();
        put("t", &mut root, &at_bound, json!([{}])).unwrap();
        assert!(matches!(
            check_depth("t", &root),
            Err(HostError::InvalidWrite { .. })
        ));
        put("t", &mut root, &at_bound, json!([])).unwrap();
        check_depth("t", &root).unwrap();
    }

    #[test]
    fn put_creates_parents_and_refuses_scalars_on_the_way() {
        let mut root = Map::new();
        put("t", &mut root, &s("a/b/c"), json!(1)).unwrap();
        assert_eq!(Value::Object(root.clone()), json!({"a": {"b": {"c": 1}}}));
        assert!(put("t", &mut root, &s("a/b/c/d"), json!(2)).is_err());
    }

    #[test]
    fn patch_follows_opa_storage_rules() {
        let mut root = Map::new();
        put("t", &mut root, &s("a"), json!({"list": [1, 2]})).unwrap();
        let op = |kind, path: &str, value| PatchOp {
            kind,
            path: s(path),
            value,
        };
        patch(
            "t",
            &mut root,
            &s("a/list/-"),
            &op(PatchKind::Add, "", json!(3)),
        )
        .unwrap();
        patch(
            "t",
            &mut root,
            &s("a/list/0"),
            &op(PatchKind::Replace, "", json!(0)),
        )
        .unwrap();
        patch(
            "t",
            &mut root,
            &s("a/x"),
            &op(PatchKind::Add, "", json!("y")),
        )
        .unwrap();
        assert_eq!(
            Value::Object(root.clone()),
            json!({"a": {"list": [0, 2, 3], "x": "y"}})
        );
        let missing = patch(
            "t",
            &mut root,
            &s("a/nope/x"),
            &op(PatchKind::Add, "", json!(1)),
        );
        assert_eq!(missing.unwrap_err().kind(), "document_not_found");
        let missing = patch(
            "t",
            &mut root,
            &s("a/zz"),
            &op(PatchKind::Replace, "", json!(1)),
        );
        assert_eq!(missing.unwrap_err().kind(), "document_not_found");
        patch(
            "t",
            &mut root,
            &s("a/list/1"),
            &op(PatchKind::Remove, "", Value::Null),
        )
        .unwrap();
        assert_eq!(
            Value::Object(root),
            json!({"a": {"list": [0, 3], "x": "y"}})
        );
    }
}
