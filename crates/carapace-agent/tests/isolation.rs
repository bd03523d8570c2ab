//! Two sessions with `workspaceAccess: "session"` (sandbox mode `all`, real bubblewrap): the
//! model of one cannot read or change the other's files however it asks — `read` with `..`,
//! host paths and relative escapes, `exec cat`, `ls`, `find`, writes — and the other session's
//! directory is byte-for-byte unchanged afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use carapace_agent::TurnRequest;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use common::*;
use serde_json::json;

const A: &str = "agent:main:telegram:direct:111";
const B: &str = "agent:main:telegram:direct:222";
const SECRET_A: &str = "secret of A: 7f3c9a";

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files(dir)
        .into_iter()
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cannot_reach_each_other_however_the_model_asks() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(
        r#"mode: "all", backend: "bwrap", workspaceAccess: "session""#,
        "",
    );
    let slug_a = carapace_policy::slug::slugify(A);
    let dir_a = e.sbx.join(&slug_a);
    let host_a = dir_a.join("secret.txt").display().to_string();
    let sbx = e.sbx.display().to_string();

    let attempts = vec![
        call("read", json!({"path": format!("../{slug_a}/secret.txt")})),
        call(
            "read",
            json!({"path": format!("/workspace/../{slug_a}/secret.txt")}),
        ),
        call("read", json!({"path": host_a.clone()})),
        call("ls", json!({"path": ".."})),
        call("ls", json!({"path": sbx.clone()})),
        call(
            "exec",
            json!({"command": format!("cat {host_a}; cat /workspace/../{slug_a}/secret.txt; cat ../{slug_a}/secret.txt")}),
        ),
        call(
            "exec",
            json!({"command": format!("ls -la / /workspace/.. {sbx} 2>&1; find / -name secret.txt 2>/dev/null; grep -rs 7f3c9a /workspace /agent /tmp /run 2>/dev/null | head")}),
        ),
        call(
            "write",
            json!({"path": format!("../{slug_a}/secret.txt"), "content": "pwned"}),
        ),
        call("write", json!({"path": host_a.clone(), "content": "pwned"})),
        call(
            "exec",
            json!({"command": format!("echo pwned > {host_a}; echo pwned > /workspace/../{slug_a}/secret.txt; echo done")}),
        ),
    ];
    let n = attempts.len();
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        // Session A writes its secret.
        .step(Reply::tools(vec![call(
            "write",
            json!({"path": "secret.txt", "content": SECRET_A}),
        )]))
        .step(Reply::text("saved"))
        // Session B: its own file, then every way in.
        .step(Reply::tools(vec![call(
            "write",
            json!({"path": "secret.txt", "content": "secret of B"}),
        )]))
        .step(Reply::tools(attempts))
        .step(Step::with(move |seen| {
            let results = seen.tool_results();
            let mine = &results[results.len() - n..];
            for r in mine {
                assert!(
                    !r.content.contains("7f3c9a"),
                    "{} leaked A's secret: {}",
                    r.name,
                    r.content
                );
                assert!(
                    !r.content.contains("secret of A"),
                    "{}: {}",
                    r.name,
                    r.content
                );
            }
            // The file tools refuse with typed errors.
            for r in mine
                .iter()
                .filter(|r| r.name == "read" || r.name == "write")
            {
                let v: serde_json::Value = serde_json::from_str(&r.content).unwrap();
                assert_eq!(v["ok"], false, "{}: {}", r.name, r.content);
                assert_eq!(v["error"]["code"], "PATH_OUTSIDE_ROOT", "{}", r.content);
            }
            // exec ran in the sandbox.
            for r in mine.iter().filter(|r| r.name == "exec") {
                let v: serde_json::Value = serde_json::from_str(&r.content).unwrap();
                assert_eq!(v["sandboxed"], true, "{}", r.content);
            }
            Reply::text("could not get in")
        }))
        .start()
        .await;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::OpenAi)}),
            json!({"model": "p/m"}),
        ),
        fast_options(),
    );
    assert_eq!(
        rt.run_turn(TurnRequest::new(A, "remember this"))
            .await
            .unwrap()
            .text,
        "saved"
    );
    assert_eq!(
        std::fs::read_to_string(dir_a.join("secret.txt")).unwrap(),
        SECRET_A
    );
    let before = tree(&dir_a);
    let out = rt
        .run_turn(TurnRequest::new(B, "read the other session's secret"))
        .await
        .unwrap();
    assert_eq!(out.text, "could not get in");
    assert_eq!(out.tool_calls as usize, n + 1);
    assert_eq!(tree(&dir_a), before, "A's directory is unchanged");
    assert_eq!(
        std::fs::read_to_string(
            e.sbx
                .join(carapace_policy::slug::slugify(B))
                .join("secret.txt")
        )
        .unwrap(),
        "secret of B"
    );
    srv.assert_clean();
}
