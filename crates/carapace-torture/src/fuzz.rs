//! Fuzzing, proptest-driven (random generation with shrinking, not coverage-guided; the
//! coverage-guided cargo-afl targets are in the repo's `fuzz/`). Each target runs for a time
//! budget; a panic or a broken property is a finding, printed with its shrunk input.

use std::path::Path;
use std::time::{Duration, Instant};

use carapace_fs::{ReadOptions, Resolver, Root};
use carapace_policy::routing::{Peer, PeerKind, RoutingSettings, session_key};
use carapace_policy::session::SessionKey;
use carapace_policy::{Config, LoadEnv, ResolveInput};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};

use crate::report::Figures;

/// Runs `test` on values of `strategy` until `budget` is spent; returns cases run.
fn drive<S: Strategy>(
    f: &mut Figures,
    name: &str,
    budget: Duration,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < budget {
        let mut runner = TestRunner::new(PtConfig {
            cases: 256,
            failure_persistence: None,
            ..PtConfig::default()
        });
        match runner.run(&strategy, &test) {
            Ok(()) => cases += 256,
            Err(e) => {
                f.problem(format!("{name}: {e}"));
                cases += 1;
                break;
            }
        }
    }
    f.attempts += cases;
    f.refused += cases;
    f.note(format!(
        "{name}: {cases} cases in {:.0} s",
        start.elapsed().as_secs_f64()
    ));
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("a".to_string()),
        Just("l_out".to_string()),
        Just("l_in".to_string()),
        Just("loop".to_string()),
        Just("d".to_string()),
        Just("secret".to_string()),
        Just("\u{2215}".to_string()),
        Just("f".to_string()),
        "[a-z.\\x00/]{1,4}",
    ]
}

fn env_none(_: &str) -> Option<String> {
    None
}

/// Runs every target for `per_target`.
pub fn run(full: bool) -> Figures {
    let mut f = Figures::new("fuzz");
    // Seconds per target: 600 in --full (an hour over the six), 4 in the short form;
    // CARAPACE_TORTURE_FUZZ_SECS overrides both.
    let secs = std::env::var("CARAPACE_TORTURE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 600 } else { 4 });
    let per = Duration::from_secs(secs);
    // 1. Path parser and both resolvers, against a planted tree; the secret lies outside.
    let Ok(dir) = tempfile::tempdir() else {
        f.problem("tempdir");
        return f;
    };
    let base = dir.path().to_path_buf();
    let root_dir = base.join("root");
    let _ = std::fs::create_dir_all(root_dir.join("d"));
    let _ = std::fs::write(base.join("secret"), "FUZZ-SECRET");
    let _ = std::fs::write(root_dir.join("f"), "inside");
    let _ = std::os::unix::fs::symlink(base.join("secret"), root_dir.join("l_out"));
    let _ = std::os::unix::fs::symlink("f", root_dir.join("l_in"));
    let _ = std::os::unix::fs::symlink("loop", root_dir.join("loop"));
    let _ = std::os::unix::fs::symlink("../../secret", root_dir.join("d/l_up"));
    let roots: Vec<Root> = [Resolver::Openat2, Resolver::Fallback]
        .into_iter()
        .filter_map(|r| Root::open_with(&root_dir, r).ok())
        .collect();
    let paths = (proptest::collection::vec(component(), 1..8), any::<bool>());
    drive(
        &mut f,
        "path parser + resolvers (openat2, fallback)",
        per,
        paths,
        |(comps, abs)| {
            let p = format!("{}{}", if abs { "/" } else { "" }, comps.join("/"));
            let opts = ReadOptions {
                symlinks: carapace_fs::SymlinkPolicy::FollowInside,
                ..ReadOptions::default()
            };
            let mut oks = Vec::new();
            for r in &roots {
                let got = r.read(Path::new(&p), &opts);
                if let Ok(b) = &got {
                    prop_assert!(
                        !String::from_utf8_lossy(b).contains("FUZZ-SECRET"),
                        "{p:?} read the secret"
                    );
                }
                oks.push(got.is_ok());
                let _ = r.stat(Path::new(&p));
                let _ = r.list(Path::new(&p));
            }
            prop_assert!(
                oks.windows(2).all(|w| w[0] == w[1]),
                "resolvers disagree on {p:?}: {oks:?}"
            );
            Ok(())
        },
    );
    // 2. Config parser + prepass: arbitrary text, and mutated valid configs.
    let env = LoadEnv {
        var: &env_none,
        home: "/nonexistent",
        state_dir: base.join("state"),
    };
    let valid = r#"{ agents: { defaults: { workspace: "/tmp/w", sandbox: { mode: "all" } } }, gateway: { port: 1 } }"#;
    let mutated = (0..valid.len(), "[\\[\\]{}:,\"'a-z0-9$ ]{0,6}").prop_map(move |(i, ins)| {
        let mut s = valid.to_string();
        let i = (0..=i).rev().find(|&k| s.is_char_boundary(k)).unwrap_or(0);
        s.insert_str(i, &ins);
        s
    });
    let text = prop_oneof![mutated, ".{0,200}", "[\\[{]{0,3000}"];
    drive(&mut f, "config parser + prepass", per, text, |t| {
        let _ = Config::parse(&t, "fuzz.json5", &env);
        Ok(())
    });
    // 3. Mount planner and path mapping.
    let Ok(cfg) = Config::parse(
        r#"{ agents: { defaults: { workspace: "/tmp/fuzz-ws", sandbox: { mode: "all", workspaceAccess: "session", workspaceRoot: "/tmp/fuzz-sbx" } } } }"#,
        "fuzz.json5",
        &env,
    ) else {
        f.problem("mount planner: base config does not parse");
        return f;
    };
    let keys = "(agent:[a-z]{0,3}:)?[a-z:.\\-]{0,12}";
    let mapping = (
        keys,
        proptest::collection::vec(component(), 0..6),
        prop_oneof![Just("/workspace/"), Just("/agent/"), Just("/"), Just("")],
    );
    drive(
        &mut f,
        "mount planner + path mapping",
        per,
        mapping,
        |(key, comps, prefix)| {
            let Ok(eff) = cfg.resolve(&ResolveInput {
                session_key: Some(&key),
                ..ResolveInput::default()
            }) else {
                return Ok(());
            };
            let table = carapace_policy::mounts::plan(&eff);
            let p = format!("{prefix}{}", comps.join("/"));
            for access in [
                carapace_policy::mounts::Access::Read,
                carapace_policy::mounts::Access::Write,
            ] {
                if let Ok(r) = table.resolve(&p, access) {
                    let host = r.host_path();
                    prop_assert!(
                        host.starts_with(&r.mount.host_path),
                        "{p:?} maps outside its mount: {host:?}"
                    );
                    prop_assert!(
                        !r.rel
                            .components()
                            .any(|c| matches!(c, std::path::Component::ParentDir)),
                        "{p:?}: rel has .."
                    );
                }
            }
            Ok(())
        },
    );
    // 4. Session keys and routing.
    let settings = RoutingSettings::from_config(&cfg.file);
    let peer = (
        "[a-z]{0,8}",
        ".{0,20}",
        any::<bool>(),
        proptest::option::of(".{0,10}"),
        proptest::option::of(".{0,10}"),
        ".{0,40}",
    );
    drive(
        &mut f,
        "session keys + routing",
        per,
        peer,
        |(channel, id, group, thread, account, raw)| {
            let _ = SessionKey::parse(&raw);
            let _ = carapace_policy::session::normalize_agent_id(&raw);
            let p = Peer {
                channel: &channel,
                account: account.as_deref(),
                kind: if group {
                    PeerKind::Group
                } else {
                    PeerKind::Direct
                },
                id: &id,
                thread: thread.as_deref(),
            };
            let k = session_key("main", &settings, &p);
            let parsed = SessionKey::parse(&k);
            prop_assert_eq!(
                parsed.agent_id.as_deref(),
                Some("main"),
                "key {:?} does not parse back to agent main",
                k
            );
            let _ = carapace_policy::routing::route(&cfg.file, &settings, &p);
            Ok(())
        },
    );
    // 5. Inbound event parsers that are public.
    drive(
        &mut f,
        "inbound parsers (mxc URIs, Telegram file paths)",
        per,
        ".{0,60}",
        |s| {
            let _ = carapace_channels::inbound::matrix_sync::parse_mxc(&s);
            let _ = carapace_channels::inbound::telegram_updates::valid_file_path(&s);
            Ok(())
        },
    );
    // 6. apply_patch: random patch text through the tool, in a lab; nothing outside may change.
    match crate::lab::Lab::new(crate::lab::Layout::Host, "") {
        Err(e) => f.problem(e),
        Ok(lab) => {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                f.problem("runtime");
                return f;
            };
            let baseline = lab.outside_snapshot();
            let line = prop_oneof![
                Just("*** Begin Patch".to_string()),
                Just("*** End Patch".to_string()),
                Just("@@".to_string()),
                Just("*** Update File: notes.txt".to_string()),
                Just("*** Add File: new.txt".to_string()),
                Just("*** Delete File: notes.txt".to_string()),
                Just("*** Move to: moved.txt".to_string()),
                Just("*** Update File: ../canary/old".to_string()),
                Just("*** End of File".to_string()),
                Just("-old".to_string()),
                Just("+new".to_string()),
                Just(" line two".to_string()),
                "[-+ @*]?.{0,12}",
            ];
            let patch = proptest::collection::vec(line, 0..14);
            drive(&mut f, "apply_patch parser", per, patch, |lines| {
                let input = lines.join("\n");
                let r =
                    rt.block_on(lab.invoke("apply_patch", serde_json::json!({ "input": input })));
                if let Err(e) = &r {
                    prop_assert!(
                        e.code() != carapace_policy::ErrorCode::Internal,
                        "INTERNAL on {input:?}: {e:?}"
                    );
                }
                prop_assert!(
                    crate::lab::diff(&baseline, &lab.outside_snapshot()).is_empty(),
                    "{input:?} changed the canary"
                );
                let _ = std::fs::write(lab.ws.join("notes.txt"), "old\nline two\n");
                Ok(())
            });
        }
    }
    f.note("not covered here: the model stream (SSE) parsers and the inbound event parsers of Slack, Discord, Telegram and Matrix (the cargo-afl targets model_stream and inbound_event in fuzz/)");
    f
}
