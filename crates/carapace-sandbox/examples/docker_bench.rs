//! Docker backend benchmark (run by scripts/bench-docker.sh):
//! - warm exec latency through the backend (create exec + start + attach + inspect, with the
//!   umask / env wrapper) against `docker exec` of the same command through the CLI;
//! - cold start: create + start of a scope's container, and create + start + first exec.
//!
//! Usage: `docker_bench [RUNS] [COLD_RUNS]` (defaults 300 and 15). Needs an engine and the
//! image in `$CARAPACE_TEST_DOCKER_IMAGE` (default `carapace-test:busybox`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use carapace_policy::{Config, LoadEnv, ResolveInput};
use carapace_sandbox::docker::{DockerBackend, DockerOptions};
use carapace_sandbox::{ExecPlan, ExecRequest, SandboxManager};
use serde_json::json;

fn stats(name: &str, mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(v[v.len() / 2]);
    let p99 = ms(v[((v.len() as f64) * 0.99).ceil() as usize - 1]);
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    println!(
        "{name:<44} n={:<4} median {median:>8.2} ms  p99 {p99:>8.2} ms  mean {mean:>8.2} ms",
        v.len()
    );
    (median, p99)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(300);
    let cold_runs = args.get(1).copied().unwrap_or(15);
    let image = std::env::var("CARAPACE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "carapace-test:busybox".into());
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("ws")).unwrap();
    let prefix = format!(
        "cbench-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let v = json!({ "agents": { "defaults": {
        "workspace": tmp.path().join("ws"),
        "sandbox": { "mode": "all", "backend": "docker",
            "workspaceRoot": tmp.path().join("sandboxes"),
            "docker": { "image": image, "containerPrefix": prefix } } } } });
    let cfg = Config::parse(
        &v.to_string(),
        "bench.json5",
        &LoadEnv {
            var: &|_| None,
            home: "/nonexistent",
            state_dir: tmp.path().join("state"),
        },
    )
    .unwrap();
    let manager = SandboxManager::new();
    let session = manager
        .session(
            &cfg,
            &ResolveInput {
                session_key: Some("agent:main:bench"),
                ..Default::default()
            },
        )
        .unwrap();
    let backend = std::sync::Arc::new(
        DockerBackend::new(DockerOptions::new(tmp.path().join("state"))).unwrap(),
    );
    println!("{}", backend.ping().await.unwrap());
    let sb = backend.session(&session).unwrap();
    let name = sb.plan().name.clone();
    let user = sb.plan().user.clone();
    let plan = ExecPlan {
        host_home: None,
        ..session.exec_plan()
    };
    let command = "echo hi";
    let req = ExecRequest {
        command: command.into(),
        workdir: "/workspace".into(),
        env: BTreeMap::new(),
        timeout: Duration::from_secs(30),
        max_output_bytes: 200_000,
    };

    // Cold start: remove, then ensure (inspect + image check + create + start).
    let mut cold = Vec::new();
    let mut cold_exec = Vec::new();
    for i in 0..cold_runs {
        backend
            .recreate(&carapace_sandbox::docker::Selector::All, true)
            .await
            .unwrap();
        let t = Instant::now();
        backend.ensure(sb.plan()).await.unwrap();
        let created = t.elapsed();
        if i % 2 == 0 {
            cold.push(created);
        } else {
            // Alternate runs: remove again and time create + start + first exec end to end.
            backend
                .recreate(&carapace_sandbox::docker::Selector::All, true)
                .await
                .unwrap();
            let t = Instant::now();
            let out = sb.run(&plan, &req).await.unwrap();
            assert_eq!(out.stdout, "hi\n");
            cold_exec.push(t.elapsed());
        }
    }

    // Warm: the container exists and this process knows it.
    for _ in 0..20 {
        sb.run(&plan, &req).await.unwrap();
    }
    // Interleaved, so load from anything else on the machine hits both sides alike.
    let script = carapace_sandbox::bwrap::shell_script(plan.umask, command);
    let mut api = Vec::with_capacity(runs);
    let mut cli = Vec::with_capacity(runs);
    let mut bare = Vec::with_capacity(runs);
    let docker = backend.client().await.unwrap();
    for _ in 0..runs {
        // The floor: one exec through the API, no wrapper, no exit-code inspect.
        let t = Instant::now();
        let ex = docker
            .create_exec(
                &name,
                bollard::models::ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec!["echo".into(), "hi".into()]),
                    user: Some(user.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&ex.id, None).await.unwrap()
        {
            use futures_util::StreamExt;
            while output.next().await.is_some() {}
        }
        bare.push(t.elapsed());
        let t = Instant::now();
        let out = sb.run(&plan, &req).await.unwrap();
        api.push(t.elapsed());
        assert_eq!(out.stdout, "hi\n");
        let t = Instant::now();
        let out = std::process::Command::new("docker")
            .args([
                "exec",
                "-u",
                &user,
                "-w",
                "/workspace",
                &name,
                "/bin/sh",
                "-lc",
            ])
            .arg(&script)
            .output()
            .unwrap();
        cli.push(t.elapsed());
        assert_eq!(out.stdout, b"hi\n");
    }

    println!("\ncommand: {command:?} in {name} ({image})");
    let (am, ap) = stats("warm exec, carapace docker backend (API)", api);
    let (cm, cp) = stats("warm exec, `docker exec` CLI", cli);
    stats("warm exec, bare API (no wrapper, no inspect)", bare);
    stats("cold start: create + start", cold);
    stats("cold start: create + start + first exec", cold_exec);
    println!("\nAPI / CLI: median {:.2}x, p99 {:.2}x", am / cm, ap / cp);
    backend
        .recreate(&carapace_sandbox::docker::Selector::All, true)
        .await
        .unwrap();
}
