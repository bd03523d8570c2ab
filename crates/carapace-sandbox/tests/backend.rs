//! Backend selection: never a silent host run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use carapace_policy::config::Backend;
use carapace_policy::{CarapaceError, Config, ErrorCode, LoadEnv, ResolveInput};
use carapace_sandbox::{BackendEnv, BackendKind, ExecParams, SandboxManager};

fn config(dir: &std::path::Path, sandbox: &str) -> Config {
    let var = |_: &str| None;
    Config::parse(
        &format!(
            r#"{{ agents: {{ defaults: {{ workspace: "{0}/ws", sandbox: {{ workspaceRoot: "{0}/sbx", {sandbox} }} }} }} }}"#,
            dir.display()
        ),
        "t.json5",
        &LoadEnv { var: &var, home: "/h", state_dir: dir.join("state") },
    )
    .unwrap()
}

fn no_backends(dir: &std::path::Path) -> SandboxManager {
    SandboxManager::with_env(BackendEnv {
        path: Some(dir.join("empty-path").into_os_string()),
        docker_host: None,
        docker_socket: dir.join("no-docker.sock"),
        temp_dir: std::env::temp_dir(),
    })
}

const S: &str = "agent:main:telegram:dm:1";

#[tokio::test]
async fn missing_bwrap_is_unavailable_never_host() {
    let t = tempfile::tempdir().unwrap();
    for backend in ["auto", "bwrap", "docker"] {
        let cfg = config(t.path(), &format!(r#"mode: "all", backend: "{backend}""#));
        let m = no_backends(t.path());
        let s = m
            .session(
                &cfg,
                &ResolveInput {
                    session_key: Some(S),
                    ..Default::default()
                },
            )
            .unwrap();
        let e = m
            .exec(
                &cfg,
                &s,
                ExecParams {
                    command: "touch /tmp/should-not-exist-carapace".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::SandboxBackendUnavailable, "{backend}");
        assert!(
            e.hint().unwrap().contains("install") || e.hint().unwrap().contains("bwrap"),
            "{backend}: {:?}",
            e.hint()
        );
        assert_eq!(e.to_envelope().details["backend"], backend);
    }
    assert!(!std::path::Path::new("/tmp/should-not-exist-carapace").exists());
}

#[tokio::test]
async fn auto_with_docker_socket_reports_docker() {
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("docker.sock");
    std::fs::write(&sock, "").unwrap();
    let m = SandboxManager::with_env(BackendEnv {
        path: Some(PathBuf::from("/nonexistent").into_os_string()),
        docker_host: None,
        docker_socket: sock,
        temp_dir: std::env::temp_dir(),
    });
    let st = m.backend_status(Backend::Auto);
    assert_eq!(st.selected, Some(BackendKind::Docker));
    // Present socket: selectable; whether the engine answers is checked at the first exec.
    assert!(st.available, "{st:?}");
    // An explicit docker backend without a socket is unavailable, with the Docker hint.
    let st = no_backends(t.path()).backend_status(Backend::Docker);
    assert_eq!(st.selected, Some(BackendKind::Docker));
    assert!(!st.available);
    let e = st.to_error();
    assert_eq!(e.code(), ErrorCode::SandboxBackendUnavailable);
    assert!(e.hint().unwrap().contains("docker.io"), "{:?}", e.hint());
}

/// The tools' path to Docker: `SandboxManager` selects the docker backend and exec runs in a
/// container whose /workspace is the session directory on the host.
#[tokio::test]
async fn docker_backend_is_selected_and_runs_in_a_container() {
    if !carapace_testkit::require_docker() {
        return;
    }
    let image = std::env::var("CARAPACE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "carapace-test:busybox".into());
    let t = tempfile::tempdir().unwrap();
    let cfg = config(
        t.path(),
        &format!(
            r#"mode: "all", backend: "docker", workspaceAccess: "session", docker: {{ image: "{image}", containerPrefix: "backend-{}-" }}"#,
            std::process::id()
        ),
    );
    let m = SandboxManager::new();
    let s = m
        .session(
            &cfg,
            &ResolveInput {
                session_key: Some(S),
                ..Default::default()
            },
        )
        .unwrap();
    let out = m
        .exec(
            &cfg,
            &s,
            ExecParams {
                command: "echo from-container > /workspace/proof.txt; cat /proc/1/cgroup >/dev/null; echo ok".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.backend, BackendKind::Docker);
    assert!(out.sandboxed);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "ok");
    let proof = s.eff.sandbox_dir.join("proof.txt");
    assert_eq!(std::fs::read_to_string(&proof).unwrap(), "from-container\n");
    // Remove this state dir's container (the instance label keeps others' untouched).
    let backend = m.docker(&t.path().join("state")).unwrap();
    carapace_sandbox::docker::recreate(&backend, &carapace_sandbox::docker::Selector::All, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn unsandboxed_policy_runs_on_host_without_backend() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path(), r#"mode: "non-main""#);
    let m = no_backends(t.path());
    // The main session is unsandboxed by policy: host exec, labelled.
    let s = m
        .session(
            &cfg,
            &ResolveInput {
                session_key: Some("agent:main:main"),
                ..Default::default()
            },
        )
        .unwrap();
    let out = m
        .exec(
            &cfg,
            &s,
            ExecParams {
                command: "echo ok".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (out.stdout.as_str(), out.sandboxed, out.backend),
        ("ok\n", false, BackendKind::HostUnsandboxed)
    );
    // Another session of the same agent is sandboxed: refused, not run on the host.
    let s = m
        .session(
            &cfg,
            &ResolveInput {
                session_key: Some(S),
                ..Default::default()
            },
        )
        .unwrap();
    let e = m
        .exec(
            &cfg,
            &s,
            ExecParams {
                command: "echo ok".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SandboxBackendUnavailable);
}

#[tokio::test]
async fn bwrap_available_here() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let m = SandboxManager::new();
    let st = m.backend_status(Backend::Auto);
    assert!(st.available, "{st:?}");
    assert_eq!(st.selected, Some(BackendKind::Bwrap));
    assert!(st.detail.contains("bubblewrap"), "{}", st.detail);
}

#[tokio::test]
async fn missing_bind_source_is_typed() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(
        t.path(),
        &format!(
            r#"mode: "all", docker: {{ binds: ["{}/nope:/data:ro"] }}"#,
            t.path().display()
        ),
    );
    let m = no_backends(t.path());
    let e = m
        .session(
            &cfg,
            &ResolveInput {
                session_key: Some(S),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConfigInvalid);
}

#[tokio::test]
async fn symlinked_sandbox_dir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path(), r#"mode: "all", workspaceAccess: "session""#);
    let m = no_backends(t.path());
    let eff = cfg
        .resolve(&ResolveInput {
            session_key: Some(S),
            ..Default::default()
        })
        .unwrap();
    std::fs::create_dir_all(t.path().join("sbx")).unwrap();
    std::os::unix::fs::symlink("/etc", &eff.sandbox_dir).unwrap();
    let e = m
        .session(
            &cfg,
            &ResolveInput {
                session_key: Some(S),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SymlinkRefused);
}
