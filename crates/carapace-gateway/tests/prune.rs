//! The gateway's periodic prune removes idle Docker sandbox containers (real engine).
//! `idleHours: 0.0001` is 0.36 s (0 would disable pruning, as in OpenClaw).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use carapace_policy::{Config, LoadEnv, ResolveInput};
use carapace_sandbox::{ExecParams, SandboxManager};

#[tokio::test]
async fn periodic_prune_removes_idle_containers() {
    if !carapace_testkit::require_docker() {
        return;
    }
    let image = std::env::var("CARAPACE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "carapace-test:busybox".into());
    let t = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{0}/ws", sandbox: {{ mode: "all", backend: "docker",
             workspaceRoot: "{0}/sbx", docker: {{ image: "{image}", containerPrefix: "prune-{1}-" }}, prune: {{ idleHours: 0.0001, maxAgeDays: 7 }} }} }} }} }}"#,
        t.path().display(),
        std::process::id()
    );
    let state = t.path().join("state");
    let var = |_: &str| None;
    let load = {
        let (text, state) = (text.clone(), state.clone());
        move || {
            Config::parse(
                &text,
                "t.json5",
                &LoadEnv {
                    var: &var,
                    home: "/h",
                    state_dir: state.clone(),
                },
            )
            .map_err(|e| carapace_policy::CarapaceError::to_envelope(&e))
        }
    };
    let config = load().unwrap();
    let m = SandboxManager::new();
    let s = m
        .session(
            &config,
            &ResolveInput {
                session_key: Some("agent:main:x:1"),
                ..Default::default()
            },
        )
        .unwrap();
    let out = m
        .exec(
            &config,
            &s,
            ExecParams {
                command: "true".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    let backend = m.docker(&state).unwrap();
    let count = || async {
        carapace_sandbox::docker::list(&backend, Some(&config))
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 1, "exec made one container");

    let task = tokio::spawn(carapace_gateway::prune::run(
        Arc::new(load),
        Duration::from_millis(200),
    ));
    let started = Instant::now();
    while count().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "idle container never pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    task.abort();
}
