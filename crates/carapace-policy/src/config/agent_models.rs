//! The model sections of a config file (`models`, and the keys of
//! [`crate::models::HANDLED_AGENT_KEYS`] in `agents.defaults`, `agents.entries.*` and
//! `agents.list[]`) are validated by [`crate::models`], not by the typed [`super::ConfigFile`]:
//! they are taken out of the raw value before the prepass (which would drop them as OpenClaw
//! keys carapace ignores) and parsed on their own, with their secrets unexpanded.

use serde_json::{Map, Value};

use crate::models::HANDLED_AGENT_KEYS;

/// Moves the model sections out of `root` into a value of the same shape that holds only
/// them (list entries keep their `id`). Values of the wrong type are left in place for the
/// typed pass to report.
pub(crate) fn take(root: &mut Value) -> Value {
    let mut out = Map::new();
    let Some(obj) = root.as_object_mut() else {
        return Value::Object(out);
    };
    if let Some(m) = obj.remove("models") {
        out.insert("models".into(), m);
    }
    let Some(Value::Object(agents)) = obj.get_mut("agents") else {
        return Value::Object(out);
    };
    let mut a = Map::new();
    if let Some(Value::Object(d)) = agents.get_mut("defaults") {
        a.insert("defaults".into(), Value::Object(take_keys(d)));
    }
    if let Some(Value::Object(entries)) = agents.get_mut("entries") {
        let mut e = Map::new();
        for (id, v) in entries.iter_mut() {
            if let Value::Object(o) = v {
                e.insert(id.clone(), Value::Object(take_keys(o)));
            }
        }
        a.insert("entries".into(), Value::Object(e));
    }
    if let Some(Value::Array(list)) = agents.get_mut("list") {
        let mut l = Vec::new();
        for v in list.iter_mut() {
            let mut taken = Map::new();
            if let Value::Object(o) = v {
                taken = take_keys(o);
                if let Some(id) = o.get("id") {
                    taken.insert("id".into(), id.clone());
                }
            }
            l.push(Value::Object(taken));
        }
        a.insert("list".into(), Value::Array(l));
    }
    out.insert("agents".into(), Value::Object(a));
    Value::Object(out)
}

fn take_keys(o: &mut Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    for k in HANDLED_AGENT_KEYS {
        if let Some(v) = o.remove(*k) {
            m.insert((*k).to_string(), v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn moves_only_the_model_keys() {
        let mut v = json!({
            "models": {"providers": {}},
            "agents": {
                "defaults": {"model": "a/b", "workspace": "/w"},
                "entries": {"x": {"timeoutSeconds": 5, "sandbox": {}}},
                "list": [{"id": "ops", "maxConcurrent": 2, "default": true}],
            },
        });
        let taken = take(&mut v);
        assert_eq!(
            v,
            json!({"agents": {"defaults": {"workspace": "/w"}, "entries": {"x": {"sandbox": {}}},
                   "list": [{"id": "ops", "default": true}]}})
        );
        assert_eq!(
            taken,
            json!({"models": {"providers": {}}, "agents": {"defaults": {"model": "a/b"},
                   "entries": {"x": {"timeoutSeconds": 5}}, "list": [{"id": "ops", "maxConcurrent": 2}]}})
        );
    }
}
