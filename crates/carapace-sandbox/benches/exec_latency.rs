//! `exec true` latency on bwrap through carapace (policy resolution, mount planning, directory
//! check, backend selection, spawn, capture, wait) against the very same bwrap command line run
//! directly with `std::process::Command`. Runs are interleaved so drift hits both equally.
//!
//! `cargo bench -p carapace-sandbox --bench exec_latency` (or scripts/bench-sandbox.sh);
//! `CARAPACE_BENCH_RUNS` (default 300, at least 200).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use carapace_policy::{Config, LoadEnv, ResolveInput};
use carapace_sandbox::bwrap::{HostLayout, bwrap_args, sandbox_env};
use carapace_sandbox::{BackendEnv, ExecParams, ExecPlan, ExecRequest, SandboxManager};

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(v[v.len() / 2]);
    let p99 = ms(v[((v.len() as f64) * 0.99).ceil() as usize - 1]);
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (median, p99, mean)
}

fn main() {
    let runs: usize = std::env::var("CARAPACE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(200);
    let env = BackendEnv::from_process();
    let Some(bwrap) = env.find_program("bwrap") else {
        eprintln!("SKIP: bwrap is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{0}/ws", sandbox: {{ mode: "all", workspaceAccess: "session", workspaceRoot: "{0}/sbx" }} }} }} }}"#,
        dir.path().display()
    );
    let var = |_: &str| None;
    let config = Config::parse(
        &text,
        "bench.json5",
        &LoadEnv {
            var: &var,
            home: "/h",
            state_dir: dir.path().join("state"),
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = SandboxManager::new();
    let key = "agent:main:telegram:dm:1";
    let input = ResolveInput {
        session_key: Some(key),
        ..Default::default()
    };

    // The same command line carapace builds, for the direct runs.
    let session = manager.session(&config, &input).unwrap();
    let plan = ExecPlan {
        host_home: None,
        ..session.exec_plan()
    };
    let req = ExecRequest {
        command: "true".into(),
        workdir: "/workspace".into(),
        env: Default::default(),
        timeout: Duration::from_secs(120),
        max_output_bytes: 200_000,
    };
    let args = bwrap_args(&HostLayout::detect(), &plan, &req, &Default::default());
    let envs = sandbox_env(&plan, &req);
    let direct = || {
        let t = Instant::now();
        let out = std::process::Command::new(&bwrap)
            .args(&args)
            .env_clear()
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        t.elapsed()
    };
    let via_carapace = || {
        rt.block_on(async {
            let t = Instant::now();
            let s = manager.session(&config, &input).unwrap();
            let out = manager
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
            t.elapsed()
        })
    };
    for _ in 0..20 {
        direct();
        via_carapace();
    }
    let (mut d, mut c) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        d.push(direct());
        c.push(via_carapace());
    }
    let (dm, dp, da) = stats(d);
    let (cm, cp, ca) = stats(c);
    println!(
        "exec true on bwrap, {runs} runs each, interleaved ({})",
        bwrap.display()
    );
    println!("| path | median | p99 | mean |");
    println!("|---|---|---|---|");
    println!("| bwrap command line, direct | {dm:.2} ms | {dp:.2} ms | {da:.2} ms |");
    println!("| carapace exec (SandboxManager) | {cm:.2} ms | {cp:.2} ms | {ca:.2} ms |");
    println!(
        "| ratio | {:.2}× | {:.2}× | {:.2}× |",
        cm / dm,
        cp / dp,
        ca / da
    );
}
