//! Shared setup of the Docker tests: a temporary state / workspace tree, a config on the docker
//! backend with the locally imported test image, a container prefix unique to the test (so
//! parallel tests never share a container), an injectable clock, and cleanup of every container
//! the test created.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use carapace_policy::{Config, LoadEnv, ResolveInput};
use carapace_sandbox::docker::{DockerBackend, DockerOptions, DockerSession, system_clock};
use carapace_sandbox::{ExecOutput, ExecPlan, ExecRequest, SandboxManager, Session};
use serde_json::{Value, json};

/// The image scripts/docker.sh imports.
pub fn image() -> String {
    std::env::var("CARAPACE_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "carapace-test:busybox".into())
}

/// One test's world.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub prefix: String,
    pub backend: Arc<DockerBackend>,
    pub offset_ms: Arc<AtomicI64>,
    pub manager: SandboxManager,
}

/// `None` (after printing why) when Docker or the test image is missing outside strict mode.
pub async fn env() -> Option<Env> {
    if !carapace_testkit::require_docker() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let offset_ms = Arc::new(AtomicI64::new(0));
    let off = offset_ms.clone();
    let sys = system_clock();
    let backend = DockerBackend::new(DockerOptions {
        state_dir: tmp.path().join("state"),
        clock: Arc::new(move || sys() + off.load(Ordering::SeqCst)),
        docker_host: None,
    })
    .unwrap();
    let reachable = backend.ping().await;
    if !carapace_testkit::require(
        "docker engine",
        reachable.is_ok(),
        &format!("the engine does not answer: {reachable:?}; source scripts/docker.sh"),
    ) {
        return None;
    }
    let present = backend
        .client()
        .await
        .unwrap()
        .inspect_image(&image())
        .await
        .is_ok();
    if !carapace_testkit::require(
        "docker test image",
        present,
        &format!("{} is not imported; source scripts/docker.sh", image()),
    ) {
        return None;
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    std::fs::create_dir_all(tmp.path().join("ws")).unwrap();
    Some(Env {
        prefix: format!("cpt-{}-", &id[..8]),
        tmp,
        backend: Arc::new(backend),
        offset_ms,
        manager: SandboxManager::new(),
    })
}

/// Deep-merges `b` into `a`.
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

impl Env {
    pub fn root(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }

    /// The agent workspace.
    pub fn ws(&self) -> PathBuf {
        self.tmp.path().join("ws")
    }

    /// A config on the docker backend; `sandbox` is merged into `agents.defaults.sandbox`.
    pub fn config(&self, sandbox: Value) -> Config {
        let mut sb = json!({
            "mode": "all",
            "backend": "docker",
            "workspaceRoot": self.tmp.path().join("sandboxes"),
            "docker": { "image": image(), "containerPrefix": self.prefix },
        });
        merge(&mut sb, &sandbox);
        let v = json!({ "agents": { "defaults": { "workspace": self.ws(), "sandbox": sb } } });
        Config::parse(
            &v.to_string(),
            "test.json5",
            &LoadEnv {
                var: &|_| None,
                home: "/nonexistent",
                state_dir: self.tmp.path().join("state"),
            },
        )
        .unwrap()
    }

    /// Resolves, plans and prepares (directories created) a session.
    pub fn session(&self, cfg: &Config, key: &str) -> Session {
        self.manager
            .session(
                cfg,
                &ResolveInput {
                    session_key: Some(key),
                    ..Default::default()
                },
            )
            .unwrap()
    }

    /// The Docker sandbox of a session.
    pub fn sandbox(&self, s: &Session) -> DockerSession {
        self.backend.session(s).unwrap()
    }

    pub fn advance(&self, d: Duration) {
        self.offset_ms
            .fetch_add(i64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Runs `command` with the config's defaults (timeout 30 s, cap 200000).
    pub async fn exec(&self, s: &Session, command: &str) -> ExecOutput {
        self.exec_with(
            s,
            command,
            Duration::from_secs(30),
            200_000,
            "/workspace",
            BTreeMap::new(),
        )
        .await
    }

    pub async fn exec_with(
        &self,
        s: &Session,
        command: &str,
        timeout: Duration,
        cap: usize,
        workdir: &str,
        env: BTreeMap<String, String>,
    ) -> ExecOutput {
        let plan = plan_of(s);
        let req = ExecRequest {
            command: command.into(),
            workdir: workdir.into(),
            env,
            timeout,
            max_output_bytes: cap,
        };
        self.sandbox(s).run(&plan, &req).await.unwrap()
    }
}

/// The ExecPlan the manager builds for a session.
pub fn plan_of(s: &Session) -> ExecPlan {
    ExecPlan {
        host_home: None,
        ..s.exec_plan()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        // Remove this test's containers on a runtime of our own (Drop cannot await).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(d) = bollard::Docker::connect_with_defaults() else {
                    return;
                };
                let Ok(d) = d.negotiate_version().await else {
                    return;
                };
                let opts = ListContainersOptions {
                    all: true,
                    filters: Some(HashMap::from([("name".to_string(), vec![prefix.clone()])])),
                    ..Default::default()
                };
                for c in d.list_containers(Some(opts)).await.unwrap_or_default() {
                    if let Some(id) = c.id {
                        let _ = d
                            .remove_container(
                                &id,
                                Some(RemoveContainerOptions {
                                    force: true,
                                    ..Default::default()
                                }),
                            )
                            .await;
                    }
                }
            });
        })
        .join();
    }
}
