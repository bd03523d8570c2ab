//! The agent runtime's tools obey the tool policy: with the executor carapace-tools gives the
//! agent surface (`registry::SurfaceTools` on `Surface::Agent`), a denied tool's schema never
//! reaches the model, and a call the model makes to it anyway comes back as a typed refusal
//! (`TOOL_DENIED` naming the setting) in the tool result — and nothing runs.
//!
//! Every restricting key, in both OpenClaw shapes where it has two (`agents.entries.<id>` and
//! `agents.list[]`), against the scripted model servers of both APIs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use carapace_agent::{AgentRuntime, SessionInfo, ToolExecutor, ToolFuture, TurnRequest};
use carapace_policy::ErrorEnvelope;
use carapace_policy::tools_policy::Surface;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use carapace_tools::registry::SurfaceTools;
use carapace_tools::{ToolCall, ToolContext, ToolSpec};
use common::*;
use serde_json::{Value, json};

/// What the gateway and the CLI plug into the runtime: the agent surface of the registry.
struct AgentTools(SurfaceTools);

impl ToolExecutor for AgentTools {
    fn tools(&self, s: &SessionInfo) -> Vec<ToolSpec> {
        self.0
            .tools(&s.session_key, &s.agent_id, s.channel.as_deref())
    }
    fn invoke<'a>(&'a self, call: ToolCall) -> ToolFuture<'a> {
        Box::pin(async move { self.0.invoke(call).await.map_err(|e| e.0) })
    }
    fn unavailable(&self, s: &SessionInfo, tool: &str) -> Option<ErrorEnvelope> {
        self.0
            .unavailable(&s.session_key, &s.agent_id, s.channel.as_deref(), tool)
            .map(|e| e.0)
    }
}

const S: &str = "agent:main:inbox:direct:alice";

/// One restricting setting: the config (sandbox body, other top-level keys), the tool it
/// denies, and the setting the refusal must name.
struct Case {
    sandbox: &'static str,
    /// More keys inside `agents` (`list: [...]` or `entries: {...}`).
    agents: &'static str,
    /// Other top-level keys.
    extra: &'static str,
    tool: &'static str,
    args: Value,
    setting: &'static str,
    /// A tool still offered ("" when the policy leaves none).
    still: &'static str,
}

fn cases() -> Vec<Case> {
    let exec = || json!({"command": "touch /workspace/pwned"});
    vec![
        Case {
            sandbox: r#"mode: "off""#,
            agents: "",
            extra: r#"tools: { deny: ["exec"] }"#,
            tool: "exec",
            args: exec(),
            setting: "tools.deny",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: "",
            extra: r#"tools: { deny: ["group:runtime"] }"#,
            tool: "exec",
            args: exec(),
            setting: "tools.deny",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: "",
            extra: r#"tools: { allow: ["read", "ls"] }"#,
            tool: "write",
            args: json!({"path": "pwned", "content": "x"}),
            setting: "tools.allow",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: "",
            extra: r#"tools: { profile: "messaging" }"#,
            tool: "exec",
            args: exec(),
            setting: "tools.profile",
            still: "message",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: "",
            extra: r#"tools: { exec: { security: "deny" } }"#,
            tool: "exec",
            args: exec(),
            setting: "tools.exec.security",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: "",
            extra: r#"tools: { exec: { applyPatch: { enabled: false } } }"#,
            tool: "apply_patch",
            args: json!({"input": "*** Begin Patch\n*** Add File: pwned\n+x\n*** End Patch\n"}),
            setting: "tools.exec.applyPatch.enabled",
            still: "read",
        },
        // The agent's own layer, both OpenClaw shapes.
        Case {
            sandbox: r#"mode: "off""#,
            agents: r#"list: [ { id: "main", tools: { deny: ["exec"] } } ]"#,
            extra: "",
            tool: "exec",
            args: exec(),
            setting: "agents.list[0].tools.deny",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: r#"entries: { main: { tools: { exec: { security: "deny" } } } }"#,
            extra: "",
            tool: "exec",
            args: exec(),
            setting: "agents.entries.main.tools.exec.security",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "off""#,
            agents: r#"entries: { main: { tools: { profile: "minimal" } } }"#,
            extra: "",
            tool: "write",
            args: json!({"path": "pwned", "content": "x"}),
            setting: "agents.entries.main.tools.profile",
            still: "",
        },
        // The sandbox tool policy applies to a sandboxed session; the default denies the
        // host-side browser.
        Case {
            sandbox: r#"mode: "all""#,
            agents: "",
            extra: r#"tools: { sandbox: { tools: { deny: ["exec"] } } }"#,
            tool: "exec",
            args: exec(),
            setting: "tools.sandbox.tools.deny",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "all""#,
            agents: r#"list: [ { id: "main", tools: { sandbox: { tools: { allow: ["read"] } } } } ]"#,
            extra: "",
            tool: "write",
            args: json!({"path": "pwned", "content": "x"}),
            setting: "agents.list[0].tools.sandbox.tools.allow",
            still: "read",
        },
        Case {
            sandbox: r#"mode: "all""#,
            agents: "",
            extra: "",
            tool: "browser",
            args: json!({"action": "screenshot", "url": "http://127.0.0.1:9/"}),
            setting: "tools.sandbox.tools.deny (default)",
            still: "read",
        },
    ]
}

/// `common::env`, with more keys inside `agents` (a second `agents` key would replace the
/// first in JSON5).
fn env_with(sandbox: &str, agents: &str, extra: &str) -> Env {
    let e = env(sandbox, "");
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ workspaceRoot: "{}", {sandbox} }} }}, {agents} }},
             media: {{ dir: "{}" }}, channels: {{ inbox: {{ dir: "{}" }} }}, {extra} }}"#,
        e.ws.display(),
        e.sbx.display(),
        e.media.display(),
        e.inbox.display(),
    );
    let var = |_: &str| None;
    let config = carapace_policy::Config::parse(
        &text,
        "test.json5",
        &carapace_policy::LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: e.state.clone(),
        },
    )
    .unwrap_or_else(|err| panic!("{err}"));
    Env {
        config: Arc::new(config),
        ..e
    }
}

fn runtime_with_policy(e: &Env, srv: &ModelServer, api: Api) -> AgentRuntime {
    let tools = Arc::new(AgentTools(SurfaceTools::new(
        ToolContext::new(Arc::clone(&e.config)),
        Surface::Agent,
    )));
    AgentRuntime::builder(
        Arc::clone(&e.config),
        models(json!({"p": provider(srv, api)}), json!({"model": "p/m"})),
        tools,
    )
    .options(fast_options())
    .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_tools_are_never_offered_and_a_forced_call_is_a_typed_refusal() {
    for (i, c) in cases().into_iter().enumerate() {
        // Both APIs for the first case, OpenAI for the rest (the wire format is not the point).
        let apis: &[Api] = if i == 0 {
            &[Api::OpenAi, Api::Anthropic]
        } else {
            &[Api::OpenAi]
        };
        for &api in apis {
            let e = env_with(c.sandbox, c.agents, c.extra);
            let (tool, setting, still) = (c.tool, c.setting, c.still);
            let args = c.args.clone();
            let srv = ModelServer::builder(api, KEY)
                .step(Step::with(move |seen| {
                    let offered = seen.tool_names();
                    assert!(
                        !offered.iter().any(|t| t == tool),
                        "{tool} was offered under {setting}: {offered:?}"
                    );
                    if still.is_empty() {
                        assert!(offered.is_empty(), "{setting}: {offered:?}");
                    } else {
                        assert!(
                            offered.iter().any(|t| t == still),
                            "{setting}: {still} is still offered: {offered:?}"
                        );
                    }
                    // The model calls it anyway.
                    Reply::tools(vec![call(tool, args.clone())])
                }))
                .step(Step::with(move |seen| {
                    let (r, v) = seen.last_tool_result().unwrap();
                    assert_eq!(r.name, tool);
                    assert_eq!(v["ok"], false, "{}", r.content);
                    assert_eq!(v["error"]["code"], "TOOL_DENIED", "{}", r.content);
                    assert_eq!(v["error"]["details"]["setting"], setting, "{}", r.content);
                    assert_eq!(v["error"]["details"]["surface"], "agent");
                    assert!(
                        v["error"]["message"].as_str().unwrap().contains(setting),
                        "{}",
                        r.content
                    );
                    if api == Api::Anthropic {
                        assert!(r.is_error);
                    }
                    Reply::text("understood")
                }))
                .start()
                .await;
            let rt = runtime_with_policy(&e, &srv, api);
            let out = rt
                .run_turn(TurnRequest::new(S, "do the forbidden thing"))
                .await
                .unwrap();
            assert_eq!(out.text, "understood", "{setting}");
            srv.assert_clean();
            // Nothing ran.
            assert!(!e.ws.join("pwned").exists(), "{setting}");
            assert!(
                !std::fs::read_dir(&e.sbx)
                    .map(|d| d.flatten().any(|x| x.path().join("pwned").exists()))
                    .unwrap_or(false),
                "{setting}"
            );
        }
    }
}

/// Without a restriction, the agent surface offers every tool (nothing of the HTTP surface's
/// default deny leaks into the model's tools).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_surface_offers_every_tool_by_default() {
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Step::with(|seen| {
            let mut offered = seen.tool_names();
            offered.sort();
            let mut all: Vec<String> = carapace_tools::tool_specs()
                .into_iter()
                .map(|s| s.name)
                .collect();
            all.sort();
            assert_eq!(offered, all);
            Reply::tools(vec![call("exec", json!({"command": "echo hi > ran"}))])
        }))
        .step(Step::with(|seen| {
            let (r, v) = seen.last_tool_result().unwrap();
            assert_eq!(r.name, "exec");
            assert_eq!(v["exitCode"], 0, "{}", r.content);
            Reply::text("done")
        }))
        .start()
        .await;
    let rt = runtime_with_policy(&e, &srv, Api::OpenAi);
    let out = rt.run_turn(TurnRequest::new(S, "run it")).await.unwrap();
    assert_eq!(out.text, "done");
    assert_eq!(std::fs::read_to_string(e.ws.join("ran")).unwrap(), "hi\n");
}
