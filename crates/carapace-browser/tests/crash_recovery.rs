//! Kill Chromium (the whole process group, SIGKILL): the next call starts a new one; a call
//! in flight when it dies is retried once on the new one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use carapace_browser::{BrowserArgs, CaptureRequest};
use common::*;

fn shot(url: String) -> CaptureRequest {
    CaptureRequest::from_args(
        None,
        BrowserArgs {
            url,
            width: Some(320),
            height: Some(240),
            ..BrowserArgs::default()
        },
    )
    .unwrap()
}

fn kill_group(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process_group(p, rustix::process::Signal::KILL).unwrap();
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_browser_is_replaced_by_the_next_call() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let svc = service(20);
    let policy = svc.policy(None);
    svc.capture(&shot(srv.url("/box")), &policy).await.unwrap();
    let first = svc.chromium_pid().await.unwrap();

    kill_group(first);
    let cap = svc.capture(&shot(srv.url("/box")), &policy).await.unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(5, 5), [255, 0, 0]);
    let second = svc.chromium_pid().await.unwrap();
    assert_ne!(first, second);

    // Killed in the middle of a call (the page's request is held by the test's gate until
    // Chromium is dead): retried once, and it works.
    let call = {
        let url = srv.url("/slow");
        let svc = std::sync::Arc::new(svc);
        let s2 = svc.clone();
        let policy = policy.clone();
        srv.set_gate(false);
        let h = tokio::spawn(async move { s2.capture(&shot(url), &policy).await });
        srv.wait_for(&srv.slow_now, 1).await;
        kill_group(second);
        srv.set_gate(true);
        (h.await.unwrap(), svc)
    };
    let (res, svc) = call;
    let cap = res.unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(5, 5), [255, 0, 0]);
    let third = svc.chromium_pid().await.unwrap();
    assert_ne!(third, second);

    // Shutdown leaves no process behind.
    svc.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!alive(third), "chromium {third} survived shutdown");
}

#[test]
fn chromium_dies_with_the_thread_that_started_it() {
    if !require_chromium() || !carapace_testkit::have_program("setpriv") {
        return;
    }
    // A runtime on its own thread starts Chromium; the service is leaked (no Drop, no
    // shutdown), as a static would be when the process is killed. When the thread ends, the
    // kernel kills Chromium (pdeathsig).
    let pid = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let srv = serve().await;
            let svc = service(20);
            svc.capture(&shot(srv.url("/box")), &svc.policy(None))
                .await
                .unwrap();
            let pid = svc.chromium_pid().await.unwrap();
            std::mem::forget(svc);
            pid
        })
    })
    .join()
    .unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if !alive(pid) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "chromium {pid} outlived the thread that started it");
}

/// Profiles of carapace processes that are gone are swept at the next launch; a live owner's
/// profile is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_profiles_are_swept_at_launch() {
    if !require_chromium() {
        return;
    }
    let tmp = std::env::temp_dir();
    // pid 999999999 cannot exist (pid_max is at most 4194304); pid 1 always does. The names
    // carry this test process's pid so that another run sharing /tmp (whose own launch sweeps
    // too) never removes or checks this run's directories.
    let me = std::process::id();
    let orphan = tmp.join(format!("carapace-chromium-999999999-sweeptest-{me}"));
    let live = tmp.join(format!("carapace-chromium-1-sweeptest-{me}"));
    for d in [&orphan, &live] {
        std::fs::create_dir_all(d.join("Default")).unwrap();
        std::fs::write(d.join("Default/Preferences"), "{}").unwrap();
    }
    let srv = serve().await;
    let svc = service(20);
    let policy = svc.policy(None);
    svc.capture(&shot(srv.url("/box")), &policy).await.unwrap();
    assert!(!orphan.exists(), "orphaned profile left behind");
    assert!(live.exists(), "a live process's profile was removed");
    std::fs::remove_dir_all(&live).unwrap();
    svc.shutdown().await;
}
