//! Configuration loading: the seed configs, the documented example, an OpenClaw file, malformed files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use carapace_policy::config::{SandboxMode, Scope, WorkspaceAccess};
use carapace_policy::{
    CarapaceError, Config, ConfigError, ErrorCode, Layer, LoadEnv, ResolveInput,
};

fn env_var(name: &str) -> Option<String> {
    match name {
        "TELEGRAM_BOT_TOKEN" => Some("123456:telegram-secret".into()),
        "MATRIX_TOKEN" => Some("syt_matrix_secret".into()),
        _ => None,
    }
}

fn load(name: &str) -> Result<Config, ConfigError> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse(
        &text,
        name,
        &LoadEnv {
            var: &env_var,
            home: "/home/u",
            state_dir: "/home/u/.carapace".into(),
        },
    )
}

#[test]
fn per_channel_access_in_defaults_validates_and_takes_effect() {
    let c = load("channel-access-defaults.json").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let e = c
        .resolve(&ResolveInput {
            session_key: Some("agent:main:telegram:dm:4242"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(e.mode.value, SandboxMode::All);
    assert!(e.sandboxed);
    assert_eq!(e.workspace_access.value, WorkspaceAccess::Session);
    assert_eq!(e.workspace_access.from, Layer::AgentDefaults);
    assert_eq!(e.scope.value, Scope::Session);
    assert_eq!(e.scope.from, Layer::Forced);
    assert_eq!(e.scope_key, "agent:main:telegram:dm:4242");
    assert!(
        e.sandbox_dir
            .to_string_lossy()
            .starts_with("/home/u/.carapace/sandboxes/agent-main-telegram-dm-4242-")
    );
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("forces a per-session sandbox"))
    );
}

#[test]
fn per_channel_access_in_array_form_validates_and_takes_effect() {
    let c = load("channel-access-array.json").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let tg = c
        .resolve(&ResolveInput {
            channel: Some("telegram"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(tg.workspace_access.value, WorkspaceAccess::Session);
    assert_eq!(tg.workspace_access.from, Layer::Channel("telegram".into()));
    // Parsed from the session key too.
    let tg2 = c
        .resolve(&ResolveInput {
            session_key: Some("agent:main:telegram:group:7"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(tg2.channel.as_deref(), Some("telegram"));
    assert_eq!(tg2.workspace_access.value, WorkspaceAccess::Session);
    // Other channels keep the default.
    let inbox = c
        .resolve(&ResolveInput {
            session_key: Some("agent:main:inbox:x"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(inbox.channel.as_deref(), Some("inbox"));
    assert_eq!(inbox.workspace_access.value, WorkspaceAccess::None);
    assert_eq!(inbox.workspace_access.from, Layer::Default);
}

#[test]
fn spec_example_validates_and_hides_secrets() {
    let c = load("spec-example.json5").unwrap();
    let tg = c.file.channels.get("telegram").unwrap();
    assert_eq!(
        tg.bot_token.as_ref().unwrap().expose(),
        Some("123456:telegram-secret")
    );
    let shown = serde_json::to_string(&c.file).unwrap();
    assert!(!shown.contains("telegram-secret") && !shown.contains("syt_matrix_secret"));
    assert!(shown.contains("${TELEGRAM_BOT_TOKEN}"));
    assert!(!format!("{:?}", c.file).contains("telegram-secret"));
    // Unset secrets are warnings, not errors.
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("channels.discord.token") && w.contains("${DISCORD_TOKEN}"))
    );
    assert_eq!(c.media_dir(), PathBuf::from("/home/u/.carapace/media"));
    assert_eq!(c.gateway_bind().to_string(), "127.0.0.1:18789");
    // Per-agent overrides, both shapes.
    let r = c
        .resolve(&ResolveInput {
            agent: Some("research"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.workspace_access.value, WorkspaceAccess::Rw);
    assert_eq!(r.workspace_access.from, Layer::Agent("research".into()));
    assert_eq!(r.agent_workspace.value, PathBuf::from("/srv/ws"));
    assert_eq!(r.umask.value.0, 0o022);
    let w = c
        .resolve(&ResolveInput {
            session_key: Some("agent:writer:discord:1"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(w.agent_id, "writer");
    assert_eq!(w.workspace_access.value, WorkspaceAccess::Ro);
    assert_eq!(
        w.agent_workspace.value,
        PathBuf::from("/home/u/.carapace/workspace")
    );
    assert_eq!(w.docker.pids_limit, Some(256));
}

#[test]
fn openclaw_file_loads_with_one_warning_per_ignored_part() {
    let c = load("openclaw.json").unwrap();
    for part in [
        "meta",
        "plugins",
        "hooks.internal",
        "agents.defaults.heartbeat",
        "agents.defaults.sandbox.browser",
        "agents.defaults.sandbox.docker.setupCommand",
        "channels.whatsapp",
        "gateway.mode",
    ] {
        let n = c
            .warnings
            .iter()
            .filter(|w| w.starts_with(&format!("{part}:")))
            .count();
        assert_eq!(n, 1, "{part}: {:?}", c.warnings);
    }
    // Tool policy is honoured, not warned about: the profile applies, the exec timeout is
    // OpenClaw's timeoutSec, and `elevated: {enabled: false}` is what carapace does anyway.
    // The model sections are the agent runtime's: parsed, not warned about.
    let primary = c.models.run_settings("main").model.unwrap().primary;
    assert_eq!(primary.to_string(), "anthropic/claude-opus-4-5");
    for part in [
        "tools.profile",
        "tools.elevated",
        "tools.exec.timeoutSec",
        "models",
        "agents.defaults.model",
    ] {
        assert!(
            !c.warnings.iter().any(|w| w.starts_with(part)),
            "{part}: {:?}",
            c.warnings
        );
    }
    assert_eq!(
        c.file.tools.profile,
        Some(carapace_policy::config::ToolProfile::Coding)
    );
    assert_eq!(c.file.tools.exec.timeout_seconds, 60);
    // The access keys carapace now handles are read, not ignored.
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.starts_with("channels.telegram."))
    );
    let tg = c.file.channels.get("telegram").unwrap();
    assert_eq!(
        tg.dm_policy,
        Some(carapace_policy::config::DmPolicy::Pairing)
    );
    assert_eq!(tg.allow_from.as_ref().unwrap().0, vec!["42".to_string()]);
    let e = c.resolve(&ResolveInput::default()).unwrap();
    assert_eq!(e.mode.value, SandboxMode::NonMain);
    assert!(!e.sandboxed, "main session is not sandboxed under non-main");
    assert_eq!(c.gateway_bind().to_string(), "127.0.0.1:18789");
    let shown = serde_json::to_string(&c.file).unwrap();
    assert!(!shown.contains("secret-token-value") && !shown.contains("123:abc"));
}

/// Ten-plus malformed configs, each with the exact path and a message naming value and fix.
#[test]
fn malformed_configs_fail_precisely() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "01-bad-access.json5",
            "agents.defaults.sandbox.workspaceAccess",
            "\"sesion\" is not one of none, ro, rw, session",
        ),
        (
            "02-bad-mode.json5",
            "agents.defaults.sandbox.mode",
            "\"sometimes\" is not one of off, non-main, all",
        ),
        (
            "03-unknown-sandbox-key.json5",
            "agents.defaults.sandbox.workspaceAcess",
            "unknown key \"workspaceAcess\"",
        ),
        (
            "04-typo-near-miss.json5",
            "agents.defaults.sandbx",
            "did you mean \"sandbox\"",
        ),
        (
            "05-mode-as-number.json5",
            "tools.fs.newFileMode",
            "644 is not an octal mode string",
        ),
        (
            "06-mode-not-octal.json5",
            "tools.fs.newFileMode",
            "\"0999\" is not an octal mode string",
        ),
        (
            "07-bind-etc.json5",
            "agents.defaults.sandbox.docker.binds[0]",
            "under /etc",
        ),
        (
            "08-list-without-id.json5",
            "agents.list[0]",
            "needs an \"id\"",
        ),
        ("09-duplicate-channel.json5", "channels[1]", "listed twice"),
        (
            "10-wrong-type.json5",
            "tools.exec.timeoutSeconds",
            "invalid type: string \"fast\"",
        ),
        (
            "11-negative-limit.json5",
            "media.maxBytes",
            "invalid value: integer -1",
        ),
        (
            "12-homeserver-not-url.json5",
            "channels.matrix.homeserver",
            "not an http(s) URL",
        ),
        (
            "13-unset-env.json5",
            "agents.defaults.workspace",
            "${CARAPACE_TEST_SURELY_UNSET_VAR}, which is not set",
        ),
        (
            "15-bad-bind.json5",
            "gateway.bind",
            "\"everywhere\" is not \"loopback\"",
        ),
        (
            "16-channel-typo.json5",
            "channels.telegarm",
            "did you mean \"telegram\"",
        ),
        (
            "17-bind-target-reserved.json5",
            "agents.defaults.sandbox.docker.binds[0]",
            "reserved",
        ),
    ];
    for (file, path, msg) in cases {
        let err = load(&format!("invalid/{file}")).expect_err(file);
        assert_eq!(err.code(), ErrorCode::ConfigInvalid);
        assert_eq!(err.code().exit_code(), 2);
        let env = err.to_envelope();
        assert_eq!(
            env.details.get("path").and_then(|p| p.as_str()),
            Some(*path),
            "{file}: {err}"
        );
        assert!(
            env.message.contains(msg),
            "{file}: {:?} lacks {msg:?}",
            env.message
        );
        assert!(env.message.contains(file), "{file}: message names the file");
    }
    let syntax = load("invalid/14-syntax.json5").expect_err("syntax");
    assert!(matches!(syntax, ConfigError::Syntax { .. }));
    assert!(syntax.to_string().contains("line"), "{syntax}");
}

#[test]
fn missing_file_means_defaults() {
    let c = Config::defaults("/s".into());
    let e = c.resolve(&ResolveInput::default()).unwrap();
    assert_eq!(e.mode.value, SandboxMode::Off);
    assert_eq!(e.workspace_access.value, WorkspaceAccess::None);
    assert_eq!(e.agent_workspace.value, PathBuf::from("/s/workspace"));
    assert_eq!(e.session_key, "agent:main:main");
    assert_eq!(e.scope_key, "agent:main");
    assert_eq!(e.docker.network, "none");
    assert_eq!(c.channel_ids(), vec!["inbox".to_string()]);
    let err = c
        .resolve(&ResolveInput {
            channel: Some("discord"),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ChannelNotConfigured);
}
