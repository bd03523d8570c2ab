//! carapace's own cost per turn and per tool call, against the scripted OpenAI server on
//! loopback (streamed answers, no delay between chunks), and the memory an idle session holds.
//!
//! Groups:
//! - `model_roundtrip/raw`: the request body of a real turn sent to the scripted server with
//!   reqwest, the streamed answer read to the end — the model's share of a turn as any client
//!   sees it (the server's checks included);
//! - `turn/text` (a user message, one model call, a final answer) and `turn/one_tool_call` (two
//!   model calls around one `ls` in the agent workspace), with transcripts fsynced
//!   (`durable`, the default) and not;
//! - before criterion: RSS growth per idle session, loading 2,000 sessions of one turn each.
//!
//! Overhead per turn ≈ `turn/text` − `model_roundtrip/raw`; per tool call ≈
//! `turn/one_tool_call` − `turn/text` − `model_roundtrip/raw` (the tool itself included).
//! Run: `cargo bench -p carapace-agent --bench agent_overhead`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use carapace_agent::TurnRequest;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use common::*;
use criterion::{Criterion, criterion_group};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server answering text forever, or a tool call then text, alternating.
async fn server(tool: bool) -> ModelServer {
    let b = ModelServer::builder(Api::OpenAi, KEY)
        .chunk_delay(Duration::ZERO)
        .without_recording();
    if tool {
        b.then_repeat(Step::with(|seen| {
            // After a tool result the model answers; after a user message it calls `ls`.
            let last_is_user = seen.messages().last().is_some_and(|m| m["role"] == "user");
            if last_is_user {
                Reply::tools(vec![call("ls", json!({}))])
            } else {
                Reply::text("done")
            }
        }))
        .start()
        .await
    } else {
        b.then_repeat(Reply::text("a short final answer"))
            .start()
            .await
    }
}

fn bench(c: &mut Criterion) {
    let runtime = rt();
    let mut g = c.benchmark_group("model_roundtrip");
    let srv = runtime.block_on(server(false));
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", srv.base_url());
    // The very body a turn sends (system prompt, nine tool schemas, the message), so the
    // server's own parsing and checks are in the baseline too.
    let body = runtime.block_on(async {
        let e = env(r#"mode: "off""#, "");
        let rec = ModelServer::builder(Api::OpenAi, KEY)
            .chunk_delay(Duration::ZERO)
            .then_repeat(Reply::text("a short final answer"))
            .start()
            .await;
        let (agent, _) = runtime_for(&e, &rec, fast_options());
        agent
            .run_turn(TurnRequest::new("agent:main:probe", "hello"))
            .await
            .unwrap();
        rec.requests()[0].body.clone()
    });
    g.bench_function("raw", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let r = client
                    .post(&url)
                    .header("authorization", format!("Bearer {KEY}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                black_box(r.bytes().await.unwrap());
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("turn");
    for (name, tool) in [("text", false), ("one_tool_call", true)] {
        for durable in [true, false] {
            let e = env(r#"mode: "off""#, "");
            let srv = runtime.block_on(server(tool));
            let mut opts = fast_options();
            opts.durable = durable;
            let (agent, _) = runtime_for(&e, &srv, opts);
            let id = format!("{name}/{}", if durable { "durable" } else { "no_fsync" });
            let mut i = 0u64;
            g.bench_function(id, |b| {
                b.iter(|| {
                    i += 1;
                    // A fresh session every 50 turns keeps the history (and the request) small.
                    let key = format!("agent:main:bench:{}", i / 50);
                    runtime.block_on(async {
                        black_box(
                            agent
                                .run_turn(TurnRequest::new(&key, "hello"))
                                .await
                                .unwrap(),
                        );
                    })
                })
            });
            drop(srv);
        }
    }
    g.finish();
}

fn runtime_for(
    e: &Env,
    srv: &ModelServer,
    opts: carapace_agent::RuntimeOptions,
) -> (carapace_agent::AgentRuntime, std::sync::Arc<Records>) {
    runtime(
        e,
        models(
            json!({"p": provider(srv, Api::OpenAi)}),
            json!({"model": "p/m"}),
        ),
        opts,
    )
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// RSS growth per idle session (one turn each, kept in memory by the runtime), measured before
/// anything else ran so freed memory is not reused.
fn idle_sessions() {
    const N: u64 = 2000;
    let runtime = rt();
    let e = env(r#"mode: "off""#, "");
    let srv = runtime.block_on(server(false));
    let mut opts = fast_options();
    opts.durable = false;
    opts.max_loaded_sessions = N as usize + 100;
    let (agent, _) = runtime_for(&e, &srv, opts);
    runtime.block_on(async {
        // Warm up allocators and connection pools.
        for i in 0..20 {
            agent
                .run_turn(TurnRequest::new(&format!("agent:main:warm:{i}"), "hello"))
                .await
                .unwrap();
        }
        // Two equal batches: if the second grows RSS as much as the first, the growth is per
        // session (not a one-off pool or a peak).
        let mut marks = vec![rss_kib()];
        for batch in 0..2 {
            for i in 0..N / 2 {
                let key = format!("agent:main:idle:{batch}:{i}");
                agent.run_turn(TurnRequest::new(&key, "hello")).await.unwrap();
            }
            marks.push(rss_kib());
        }
        for (b, w) in marks.windows(2).enumerate() {
            let d = w[1].saturating_sub(w[0]);
            println!(
                "idle sessions, batch {}: {} sessions, RSS +{d} KiB, {:.1} KiB per idle session (one turn each)",
                b + 1,
                N / 2,
                d as f64 / (N / 2) as f64
            );
        }
        println!("loaded sessions: {}", agent.loaded_sessions());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(6));
    targets = bench
}

fn main() {
    // First, in a fresh heap: RSS only grows for memory the process did not have before.
    idle_sessions();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
