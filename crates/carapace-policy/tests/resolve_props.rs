//! Property tests of the resolution rules of docs/config.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use carapace_policy::config::{SandboxMode, Scope, WorkspaceAccess};
use carapace_policy::{Config, Layer, LoadEnv, ResolveInput};
use proptest::prelude::*;
use serde_json::{Value, json};

fn access() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec!["none", "ro", "rw", "session"]))
}
fn mode() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec!["off", "non-main", "all"]))
}
fn scope() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec!["session", "agent", "shared"]))
}

fn sandbox(mode: Option<&str>, access: Option<&str>, scope: Option<&str>, bind: &str) -> Value {
    let mut s = serde_json::Map::new();
    if let Some(m) = mode {
        s.insert("mode".into(), json!(m));
    }
    if let Some(a) = access {
        s.insert("workspaceAccess".into(), json!(a));
    }
    if let Some(sc) = scope {
        s.insert("scope".into(), json!(sc));
    }
    s.insert("docker".into(), json!({ "binds": [format!("{bind}:/mnt{bind}:ro")], "env": { "SHARED": bind, bind.replace('/', "_"): "1" } }));
    Value::Object(s)
}

fn parse(v: &Value) -> Config {
    let none = |_: &str| None;
    Config::parse(
        &v.to_string(),
        "prop.json",
        &LoadEnv {
            var: &none,
            home: "/h",
            state_dir: "/s".into(),
        },
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn precedence_channel_over_agent_over_defaults(
        d_mode in mode(), d_access in access(), d_scope in scope(),
        a_mode in mode(), a_access in access(), a_scope in scope(),
        c_access in access(),
        list_shape in any::<bool>(),
        rest in prop::sample::select(vec!["main", "telegram:dm:1", "inbox:x", "other:y"]),
    ) {
        let agent = sandbox(a_mode, a_access, a_scope, "/srv/agent");
        let agents = if list_shape {
            json!({ "defaults": { "sandbox": sandbox(d_mode, d_access, d_scope, "/srv/defaults") }, "list": [ { "id": "bot", "sandbox": agent } ] })
        } else {
            json!({ "defaults": { "sandbox": sandbox(d_mode, d_access, d_scope, "/srv/defaults") }, "entries": { "bot": { "sandbox": agent } } })
        };
        let mut channel = json!({ "id": "telegram" });
        if let Some(c) = c_access {
            channel["session"] = json!({ "workspaceAccess": c });
        }
        let cfg = parse(&json!({ "agents": agents, "channels": [channel] }));
        let key = format!("agent:bot:{rest}");
        let e = cfg.resolve(&ResolveInput { session_key: Some(&key), ..Default::default() }).unwrap();

        // workspaceAccess: channel (only for telegram sessions) > agent > defaults > none.
        let on_telegram = rest.starts_with("telegram:");
        let (want, from) = match (on_telegram.then_some(c_access).flatten(), a_access, d_access) {
            (Some(c), _, _) => (c, Layer::Channel("telegram".into())),
            (None, Some(a), _) => (a, Layer::Agent("bot".into())),
            (None, None, Some(d)) => (d, Layer::AgentDefaults),
            _ => ("none", Layer::Default),
        };
        prop_assert_eq!(e.workspace_access.value.as_str(), want);
        prop_assert_eq!(&e.workspace_access.from, &from);

        // mode: agent > defaults > off; non-main leaves the main session unsandboxed.
        let m = a_mode.or(d_mode).unwrap_or("off");
        prop_assert_eq!(e.mode.value.as_str(), m);
        let sandboxed = match e.mode.value {
            SandboxMode::Off => false,
            SandboxMode::NonMain => rest != "main",
            SandboxMode::All => true,
        };
        prop_assert_eq!(e.sandboxed, sandboxed);

        // scope: session access forces session; otherwise agent > defaults > agent.
        if e.workspace_access.value == WorkspaceAccess::Session {
            prop_assert_eq!(e.scope.value, Scope::Session);
            prop_assert_eq!(&e.scope.from, &Layer::Forced);
            prop_assert_eq!(&e.scope_key, &key);
        } else {
            let s = a_scope.or(d_scope).unwrap_or("agent");
            prop_assert_eq!(e.scope.value.as_str(), s);
            // A channel-decided access gets its own scope key; otherwise OpenClaw's key.
            let base = match e.scope.value {
                Scope::Shared => "shared".to_string(),
                Scope::Agent => "agent:bot".to_string(),
                Scope::Session => key.clone(),
            };
            if matches!(e.workspace_access.from, Layer::Channel(_)) && e.scope.value != Scope::Session {
                prop_assert_eq!(&e.scope_key, &format!("{base}|access={}", e.workspace_access.value));
            } else {
                prop_assert_eq!(&e.scope_key, &base);
            }
        }
        prop_assert!(e.sandbox_dir.starts_with("/s/sandboxes"));
        prop_assert_eq!(e.sandbox_dir.file_name().unwrap().to_string_lossy(), e.scope_slug.clone());

        // binds concatenate defaults-first; env merges with the agent winning.
        let binds: Vec<_> = e.docker.binds.iter().map(|b| b.host_path.as_str()).collect();
        prop_assert_eq!(binds, vec!["/srv/defaults", "/srv/agent"]);
        prop_assert_eq!(e.docker.env.get("SHARED").map(String::as_str), Some("/srv/agent"));
        prop_assert!(e.docker.env.contains_key("_srv_defaults") && e.docker.env.contains_key("_srv_agent"));
    }

    #[test]
    fn explicit_arguments_win_over_the_session_key(agent in "[a-z][a-z0-9_]{0,10}", rest in "[a-z:]{1,12}") {
        let cfg = parse(&json!({ "channels": { "telegram": {}, "inbox": {} } }));
        let key = format!("agent:other:telegram:{rest}");
        let e = cfg.resolve(&ResolveInput { agent: Some(&agent), channel: Some("inbox"), session_key: Some(&key) }).unwrap();
        prop_assert_eq!(&e.agent_id, &agent);
        prop_assert_eq!(e.channel.as_deref(), Some("inbox"));
        prop_assert_eq!(&e.session_key, &key);
    }
}
