//! Lifecycle of Docker sandboxes against a real engine: reuse, restart, config-hash recreate (or
//! "recreate to apply" while hot), recreate selectors, prune by idle time and age with an
//! injected clock (no sleeping), labels, a vanished container, a missing image, an unreachable
//! engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod docker_common;

use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, StopContainerOptions};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_sandbox::docker::spec::{
    LABEL_AGENT_ID, LABEL_CONFIG_HASH, LABEL_SANDBOX, LABEL_SCOPE_KEY,
};
use carapace_sandbox::docker::{
    DockerBackend, DockerError, DockerOptions, EnsureAction, Selector, system_clock,
};
use docker_common::env;
use serde_json::json;

#[tokio::test]
async fn reuses_the_running_container_and_starts_a_stopped_one() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let sb = e.sandbox(&s);
    let first = e.backend.ensure(sb.plan()).await.unwrap();
    assert_eq!(first.action, EnsureAction::Created);
    assert!(first.name.starts_with(&e.prefix));
    let again = e.backend.ensure(sb.plan()).await.unwrap();
    assert_eq!(again.action, EnsureAction::Reused);
    assert_eq!(again.id, first.id);

    // Another session of the same agent (scope "agent") shares the container.
    let other = e.session(&cfg, "agent:main:t2");
    assert_eq!(e.sandbox(&other).plan().name, first.name);
    assert_eq!(e.exec(&other, "echo ok").await.stdout, "ok\n");

    // A fresh process (no memory of it) finds the same container by name.
    let fresh = DockerBackend::new(DockerOptions::new(e.root().join("state"))).unwrap();
    assert_eq!(fresh.ensure(sb.plan()).await.unwrap().id, first.id);

    let d = e.backend.client().await.unwrap();
    d.stop_container(
        &first.id,
        Some(StopContainerOptions {
            t: Some(0),
            signal: None,
        }),
    )
    .await
    .unwrap();
    let started = e.backend.ensure(sb.plan()).await.unwrap();
    assert_eq!(started.action, EnsureAction::Started);
    assert_eq!(started.id, first.id);

    let c = d
        .inspect_container(&first.id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let labels = c.config.unwrap().labels.unwrap();
    assert_eq!(labels[LABEL_SANDBOX], "1");
    assert_eq!(labels[LABEL_SCOPE_KEY], "agent:main");
    assert_eq!(labels[LABEL_AGENT_ID], "main");
    assert_eq!(labels[LABEL_CONFIG_HASH], sb.plan().config_hash);
    let hc = c.host_config.unwrap();
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
}

#[tokio::test]
async fn changed_config_recreates_unless_recently_used() {
    let Some(e) = env().await else { return };
    let cfg1 = e.config(json!({}));
    let s1 = e.session(&cfg1, "agent:main:t1");
    let out = e.exec(&s1, "echo one").await;
    assert_eq!(out.stdout, "one\n");
    let id1 = e.backend.ensure(e.sandbox(&s1).plan()).await.unwrap().id;

    // A resource change (not a change of what the sandbox can reach).
    let cfg2 = e.config(json!({ "docker": { "memory": "256m" } }));
    let s2 = e.session(&cfg2, "agent:main:t1");
    let plan2 = e.sandbox(&s2).plan().clone();
    assert_ne!(plan2.config_hash, e.sandbox(&s1).plan().config_hash);
    assert_eq!(plan2.access_hash, e.sandbox(&s1).plan().access_hash);

    // Used a minute ago: kept, with the command that applies the change.
    e.advance(Duration::from_secs(60));
    let kept = e.backend.ensure(&plan2).await.unwrap();
    assert_eq!(kept.id, id1);
    assert_eq!(
        kept.action,
        EnsureAction::KeptStale {
            recreate_command: "carapace sandbox recreate --agent main".into()
        }
    );
    let list = e.backend.list(Some(&cfg2)).await.unwrap();
    let c = list.iter().find(|c| c.id == id1).unwrap();
    assert!(c.running && c.hot);
    assert_eq!(c.config_match, Some(false));
    assert_eq!(
        c.note.as_deref(),
        Some("config changed; recreate to apply: carapace sandbox recreate --agent main")
    );
    let line = e.backend.explain(&plan2).await.unwrap().unwrap();
    assert!(
        line.contains("recreate to apply: carapace sandbox recreate --agent main"),
        "{line}"
    );
    // Exec still works in the kept container, which keeps its old limit.
    let mem = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
    let before = e.exec(&s2, mem).await.stdout;
    assert_ne!(before, format!("{}\n", 256u64 << 20));

    // Idle past the hot window: the next use recreates it.
    e.advance(Duration::from_secs(6 * 60));
    let re = e.backend.ensure(&plan2).await.unwrap();
    assert_eq!(re.action, EnsureAction::Recreated);
    assert_ne!(re.id, id1);
    assert_eq!(e.exec(&s2, mem).await.stdout, format!("{}\n", 256u64 << 20));
    let list = e.backend.list(Some(&cfg2)).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].config_match, Some(true));
    assert_eq!(list[0].note, None);
    assert_eq!(list[0].image, docker_common::image());
}

#[tokio::test]
async fn a_change_of_reach_applies_even_when_recently_used() {
    let Some(e) = env().await else { return };
    std::fs::write(e.ws().join("AGENTS.md"), "agents").unwrap();
    // An rw workspace is written as its owner; a sandbox never runs as root.
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(e.ws(), Some(4242), Some(4242)).unwrap();
    }
    let rw = e.config(json!({ "workspaceAccess": "rw" }));
    let s = e.session(&rw, "agent:main:t1");
    assert_eq!(
        e.exec(&s, "echo w > w.txt && echo wrote").await.stdout,
        "wrote\n"
    );
    let id1 = e.backend.ensure(e.sandbox(&s).plan()).await.unwrap().id;

    // Narrowed to read-only a second later: a kept container would let the shell write what
    // the file tools now refuse, so it is recreated at once.
    e.advance(Duration::from_secs(1));
    let ro = e.config(json!({ "workspaceAccess": "ro" }));
    let s = e.session(&ro, "agent:main:t1");
    let out = e
        .exec(
            &s,
            "touch /workspace/x 2>/dev/null && echo wrote || echo refused",
        )
        .await;
    assert_eq!(out.stdout, "refused\n", "{out:?}");
    assert!(!e.ws().join("x").exists());
    let now = e.backend.ensure(e.sandbox(&s).plan()).await.unwrap();
    assert_eq!(now.action, EnsureAction::Reused);
    assert_ne!(now.id, id1);
}

#[tokio::test]
async fn recreate_selects_and_spares_hot_containers_without_force() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({ "scope": "session" }));
    let a = e.session(&cfg, "agent:main:a");
    let b = e.session(&cfg, "agent:main:b");
    let r = e.session(&cfg, "agent:research:c");
    for s in [&a, &b, &r] {
        assert_eq!(e.exec(s, "echo up").await.stdout, "up\n");
    }
    assert_eq!(e.backend.list(None).await.unwrap().len(), 3);

    // Just used: spared without --force.
    let rep = e
        .backend
        .recreate(&Selector::Session("agent:main:a".into()), false)
        .await
        .unwrap();
    assert!(rep.removed.is_empty());
    assert_eq!(rep.skipped.len(), 1);
    assert!(rep.skipped[0].1.contains("--force"), "{rep:?}");

    let rep = e
        .backend
        .recreate(&Selector::Session("agent:main:a".into()), true)
        .await
        .unwrap();
    assert_eq!(rep.removed, vec![e.sandbox(&a).plan().name.clone()]);

    e.advance(Duration::from_secs(600));
    let rep = e
        .backend
        .recreate(&Selector::Agent("research".into()), false)
        .await
        .unwrap();
    assert_eq!(rep.removed, vec![e.sandbox(&r).plan().name.clone()]);
    let left: Vec<String> = e
        .backend
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(left, vec![e.sandbox(&b).plan().name.clone()]);

    // A removed container comes back on next use, transparently.
    assert_eq!(e.exec(&a, "echo back").await.stdout, "back\n");
    let rep = e.backend.recreate(&Selector::All, true).await.unwrap();
    assert_eq!(rep.removed.len(), 2);
    assert!(e.backend.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_container_removed_behind_our_back_is_created_again() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    assert_eq!(e.exec(&s, "echo a").await.stdout, "a\n");
    let sb = e.sandbox(&s);
    let name = sb.plan().name.clone();
    e.backend
        .client()
        .await
        .unwrap()
        .remove_container(
            &name,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    // Same backend (it remembers the old id): the exec notices, ensures again, retries once.
    assert_eq!(e.exec(&s, "echo b").await.stdout, "b\n");
}

#[tokio::test]
async fn two_processes_racing_to_create_end_with_one_container() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let plan = e.sandbox(&s).plan().clone();
    // Two backends on the same state dir stand for two carapace processes.
    let a = DockerBackend::new(DockerOptions::new(e.root().join("state"))).unwrap();
    let b = DockerBackend::new(DockerOptions::new(e.root().join("state"))).unwrap();
    let (ra, rb) = tokio::join!(a.ensure(&plan), b.ensure(&plan));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.id, rb.id);
    assert_eq!(e.backend.list(None).await.unwrap().len(), 1);
}

/// Two installations (two state dirs) on one engine with the same prefix and scope: the second
/// is refused with the facts and a hint, and the first one's container is left as it was.
#[tokio::test]
async fn another_installations_container_is_never_reused_or_removed() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let plan = e.sandbox(&s).plan().clone();
    let mine = e.backend.ensure(&plan).await.unwrap();
    let other_state = e.root().join("other-state");
    std::fs::create_dir_all(&other_state).unwrap();
    let other = DockerBackend::new(DockerOptions::new(other_state)).unwrap();
    let err = other.ensure(&plan).await.unwrap_err();
    assert!(matches!(err, DockerError::NameTaken { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::SandboxBackendUnavailable);
    assert_eq!(err.details()["reason"], "nameTaken");
    assert_eq!(err.details()["container"], plan.name.as_str());
    assert!(err.hint().unwrap().contains("containerPrefix"));
    // The other installation sees none of it, and the owner keeps its running container.
    assert!(other.list(None).await.unwrap().is_empty());
    let again = e.backend.ensure(&plan).await.unwrap();
    assert_eq!(again.action, EnsureAction::Reused);
    assert_eq!(again.id, mine.id);
}

#[tokio::test]
async fn prune_removes_idle_and_old_containers_by_the_injected_clock() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    assert_eq!(e.exec(&s, "echo a").await.stdout, "a\n");
    let name = e.sandbox(&s).plan().name.clone();
    assert!(e.backend.registry().get(&name).is_some());

    let rep = e.backend.prune(&cfg).await.unwrap();
    assert_eq!(rep.kept, vec![name.clone()]);
    assert!(rep.removed.is_empty());

    e.advance(Duration::from_secs(25 * 3600));
    let rep = e.backend.prune(&cfg).await.unwrap();
    assert_eq!(rep.removed.len(), 1, "{rep:?}");
    assert_eq!(rep.removed[0].0, name);
    assert!(rep.removed[0].1.contains("idle"), "{rep:?}");
    assert!(e.backend.registry().get(&name).is_none());
    assert!(e.backend.list(None).await.unwrap().is_empty());

    // maxAgeDays alone (idle pruning disabled): a container in daily use still ages out.
    let cfg = e.config(json!({ "prune": { "idleHours": 0, "maxAgeDays": 1 } }));
    let s = e.session(&cfg, "agent:main:t1");
    assert_eq!(e.exec(&s, "echo b").await.stdout, "b\n");
    e.advance(Duration::from_secs(20 * 3600));
    assert!(e.backend.prune(&cfg).await.unwrap().removed.is_empty());
    e.advance(Duration::from_secs(5 * 3600));
    let rep = e.backend.prune(&cfg).await.unwrap();
    assert_eq!(rep.removed.len(), 1, "{rep:?}");
    assert!(rep.removed[0].1.contains("days old"), "{rep:?}");
}

#[tokio::test]
async fn missing_image_is_a_typed_error_naming_it() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({ "docker": { "image": "carapace-test:not-imported" } }));
    let s = e.session(&cfg, "agent:main:t1");
    let err = e.backend.ensure(e.sandbox(&s).plan()).await.unwrap_err();
    match &err {
        DockerError::ImageMissing { image } => assert_eq!(image, "carapace-test:not-imported"),
        other => panic!("expected ImageMissing, got {other:?}"),
    }
    assert_eq!(err.code(), ErrorCode::SandboxBackendUnavailable);
    let env = err.to_envelope();
    assert_eq!(env.details["image"], "carapace-test:not-imported");
    let hint = env.hint.unwrap();
    assert!(
        hint.contains("docker import") && hint.contains("docker build"),
        "{hint}"
    );
    // Through the Sandbox interface it is SANDBOX_BACKEND_UNAVAILABLE as well.
    let plan = docker_common::plan_of(&s);
    let req = carapace_sandbox::ExecRequest {
        command: "true".into(),
        workdir: "/workspace".into(),
        env: Default::default(),
        timeout: Duration::from_secs(5),
        max_output_bytes: 100,
    };
    use carapace_sandbox::Sandbox;
    let err = e.sandbox(&s).exec(&plan, req).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SandboxBackendUnavailable);
    assert!(
        err.to_string().contains("carapace-test:not-imported"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_engine_is_backend_unavailable() {
    // No engine needed: the socket does not exist.
    let tmp = tempfile::tempdir().unwrap();
    let b = DockerBackend::new(DockerOptions {
        state_dir: tmp.path().join("state"),
        clock: system_clock(),
        docker_host: Some(format!("unix://{}/no/docker.sock", tmp.path().display())),
    })
    .unwrap();
    let err = b.ping().await.unwrap_err();
    assert!(matches!(err, DockerError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::SandboxBackendUnavailable);
    let env = err.to_envelope();
    assert!(env.hint.unwrap().contains("dockerd"));
    assert!(
        env.details["dockerHost"]
            .as_str()
            .unwrap()
            .contains("/no/docker.sock")
    );
    // A port nothing listens on.
    let b = DockerBackend::new(DockerOptions {
        state_dir: tmp.path().join("state"),
        clock: system_clock(),
        docker_host: Some("tcp://127.0.0.1:9".into()),
    })
    .unwrap();
    assert!(matches!(
        b.ping().await.unwrap_err(),
        DockerError::Unavailable { .. }
    ));
}
