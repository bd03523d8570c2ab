//! The one registry: what each tool declares (section → group, profiles, effects → audited,
//! strict schemas with OpenClaw's spellings as aliases), and what its dispatch does before a
//! tool runs, for every surface alike (unknown tools and arguments, the policy, the action,
//! `sessionKey: "main"`, a channel hint).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_policy::ErrorCode;
use carapace_policy::tools_policy::{Section, Surface};
use carapace_tools::registry::{self, Origin};
use carapace_tools::{ToolCall, invoke_on};
use common::*;
use serde_json::{Value, json};

fn names(f: impl Fn(&carapace_tools::ToolSpec) -> bool) -> Vec<String> {
    registry::specs()
        .iter()
        .filter(|s| f(s))
        .map(|s| s.name.clone())
        .collect()
}

#[test]
fn the_tools_declare_their_groups_profiles_and_effects() {
    let section = |s: Section| names(|t| t.meta.section == s);
    assert_eq!(
        section(Section::Fs),
        ["read", "write", "edit", "apply_patch", "ls"]
    );
    assert_eq!(section(Section::Runtime), ["exec"]);
    assert_eq!(section(Section::Ui), ["browser"]);
    assert_eq!(section(Section::Messaging), ["message"]);
    assert_eq!(section(Section::Media), ["media_save"]);
    use carapace_policy::config::ToolProfile::*;
    let profile = |p| names(|t| t.meta.profiles.contains(&p));
    assert_eq!(
        profile(Coding),
        [
            "read",
            "write",
            "edit",
            "apply_patch",
            "ls",
            "exec",
            "media_save"
        ]
    );
    assert_eq!(profile(Messaging), ["message"]);
    assert!(profile(Minimal).is_empty());
    // Audited: everything whose effects go beyond reading the workspace.
    assert_eq!(
        names(|t| t.meta.audited()),
        [
            "write",
            "edit",
            "apply_patch",
            "exec",
            "browser",
            "message",
            "media_save"
        ]
    );
    for s in registry::specs() {
        assert_eq!(
            s.input_schema["additionalProperties"], false,
            "{}: unknown arguments are refused, the schema says so",
            s.name
        );
        assert_eq!(s.input_schema["type"], "object");
    }
}

const S: &str = "agent:main:main";

async fn on(e: &Env, surface: Surface, call: ToolCall) -> Result<Value, carapace_tools::ToolError> {
    invoke_on(&e.ctx, &Origin::new(surface), call).await
}

#[tokio::test]
async fn dispatch_checks_before_anything_runs() {
    let e = env(r#"mode: "off""#, r#"tools: { deny: ["exec"] }"#);
    // Unknown tool.
    let err = call(&e, S, "rm", json!({})).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    // Denied on every surface, the setting named.
    for s in Surface::ALL {
        let mut c = ToolCall::new("exec", json!({"command": "touch pwned"}));
        c.session_key = Some(S.into());
        let err = on(&e, *s, c).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ToolDenied, "{s:?}");
        assert_eq!(err.0.details["setting"], "tools.deny");
        assert_eq!(err.0.details["surface"], s.as_str());
    }
    assert!(!e.ws.join("pwned").exists());
    // An unknown argument is refused, not ignored; aliases are arguments.
    let err = call(
        &e,
        S,
        "write",
        json!({"path": "a", "content": "x", "append": true}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert_eq!(err.0.details["argument"], "append");
    assert!(!e.ws.join("a").exists());
    ok(&e, S, "write", json!({"filePath": "b", "content": "x"})).await;
    assert!(e.ws.join("b").exists());
    // `action` becomes an argument only of tools that have one (OpenClaw's rule).
    let mut c = ToolCall::new("read", json!({"path": "b"}));
    c.action = Some("json".into());
    c.session_key = Some(S.into());
    assert_eq!(
        on(&e, Surface::Http, c).await.unwrap_err().code(),
        ErrorCode::ToolDenied
    );
    let mut c = ToolCall::new("read", json!({"path": "b"}));
    c.action = Some("json".into());
    assert_eq!(on(&e, Surface::Mcp, c).await.unwrap()["content"], "x");
}

#[tokio::test]
async fn main_is_the_default_agents_main_session_and_a_channel_hint_never_breaks_a_call() {
    let e = env(
        r#"mode: "non-main""#,
        r#"agents: { list: [ { id: "work", default: true, tools: { deny: ["ls"] } } ] }"#,
    );
    // "main" is the default agent's main session, agent:work:main: its policy applies.
    let mut c = ToolCall::new("ls", json!({}));
    c.session_key = Some("main".into());
    let err = on(&e, Surface::Mcp, c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ToolDenied);
    assert_eq!(err.0.details["session"], "agent:work:main");
    assert_eq!(err.0.details["setting"], "agents.list[0].tools.deny");
    let mut c = ToolCall::new("exec", json!({"command": "echo $CARAPACE_UNSANDBOXED"}));
    c.session_key = Some("main".into());
    let v = on(&e, Surface::Mcp, c).await.unwrap();
    assert_eq!(
        v["sandboxed"], false,
        "the main session is not sandboxed under non-main: {v}"
    );
    // (A second `agents` key replaced the env's defaults above; a fresh env for the rest.)
    let e = env(r#"mode: "off""#, "");
    // A hint naming an unconfigured channel is ignored; a configured one is the channel.
    for hint in ["slack", "inbox"] {
        let mut c = ToolCall::new("read", json!({"path": "AGENTS.md"}));
        c.session_key = Some(S.into());
        let o = Origin {
            surface: Surface::Mcp,
            channel_hint: Some(hint.into()),
        };
        invoke_on(&e.ctx, &o, c).await.unwrap();
    }
    // An explicit channel that is not configured is still an error.
    let mut c = ToolCall::new("read", json!({"path": "AGENTS.md"}));
    c.channel = Some("slack".into());
    assert_eq!(
        on(&e, Surface::Mcp, c).await.unwrap_err().code(),
        ErrorCode::ChannelNotConfigured
    );
}
