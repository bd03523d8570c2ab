//! The attacks on `apply_patch`: `*** Move to:` naming the file itself (`./x`, `x`,
//! `sub/../x`, `/workspace/x`, through a symlinked directory) used to delete the file and
//! report success; a patch that failed halfway left its earlier changes; two operations on one
//! path gave a wrong summary. Now a patch applies completely or not at all, operations see the
//! ones before them, and the summary lists each file once with its net change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::{Value, json};

const S: &str = "agent:main:main";

fn patch(body: &str) -> Value {
    json!({ "input": format!("*** Begin Patch\n{body}*** End Patch\n") })
}

fn staging_anywhere(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (p, _) in tree_hash(dir) {
        if p.rsplit('/')
            .next()
            .unwrap()
            .starts_with(carapace_fs::STAGING_PREFIX)
        {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn move_to_the_same_file_updates_it_in_place() {
    let e = env(r#"mode: "off""#, "");
    std::os::unix::fs::symlink(".", e.ws.join("link")).unwrap();
    for dest in ["./x", "x", "sub/../x", "/workspace/x", "link/x", " x "] {
        std::fs::write(e.ws.join("x"), "a\n").unwrap();
        let v = ok(
            &e,
            S,
            "apply_patch",
            patch(&format!(
                "*** Update File: x\n*** Move to: {dest}\n@@\n-a\n+b\n"
            )),
        )
        .await;
        assert_eq!(
            std::fs::read_to_string(e.ws.join("x")).ok().as_deref(),
            Some("b\n"),
            "Move to: {dest} lost the file"
        );
        assert_eq!(v["updated"], json!(["/workspace/x"]), "{dest}: {v}");
        assert_eq!(v["deleted"], json!([]), "{dest}: {v}");
        assert_eq!(
            v["summary"],
            "Success. Updated the following files:\nM /workspace/x"
        );
    }
    // A pure move onto itself changes nothing and loses nothing.
    ok(
        &e,
        S,
        "apply_patch",
        patch("*** Update File: x\n*** Move to: ./x\n"),
    )
    .await;
    assert_eq!(std::fs::read_to_string(e.ws.join("x")).unwrap(), "b\n");
}

#[tokio::test]
async fn operations_on_one_path_compose_and_are_summarised_once() {
    let e = env(r#"mode: "off""#, "");
    std::fs::write(e.ws.join("two.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(e.ws.join("w.txt"), "old\n").unwrap();
    std::fs::write(e.ws.join("src.txt"), "moved\n").unwrap();
    let v = ok(
        &e,
        S,
        "apply_patch",
        patch(
            "*** Update File: two.txt\n@@\n-one\n+ONE\n\
             *** Update File: ./two.txt\n@@\n-three\n+THREE\n\
             *** Add File: y.txt\n+first\n\
             *** Update File: y.txt\n@@\n-first\n+second\n\
             *** Add File: z.txt\n+gone\n\
             *** Delete File: z.txt\n\
             *** Delete File: w.txt\n\
             *** Add File: w.txt\n+new\n\
             *** Update File: src.txt\n*** Move to: dst.txt\n\
             *** Update File: dst.txt\n@@\n-moved\n+moved and edited\n",
        ),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(e.ws.join("two.txt")).unwrap(),
        "ONE\ntwo\nTHREE\n"
    );
    assert_eq!(
        std::fs::read_to_string(e.ws.join("y.txt")).unwrap(),
        "second\n"
    );
    assert!(!e.ws.join("z.txt").exists());
    assert_eq!(
        std::fs::read_to_string(e.ws.join("w.txt")).unwrap(),
        "new\n"
    );
    assert!(!e.ws.join("src.txt").exists());
    assert_eq!(
        std::fs::read_to_string(e.ws.join("dst.txt")).unwrap(),
        "moved and edited\n"
    );
    assert_eq!(v["added"], json!(["/workspace/y.txt"]));
    assert_eq!(
        v["updated"],
        json!([
            "/workspace/two.txt",
            "/workspace/w.txt",
            "/workspace/dst.txt"
        ])
    );
    assert_eq!(v["deleted"], json!(["/workspace/src.txt"]));
    // Deleting a file twice is refused (the second sees it gone), and nothing changes.
    let before = tree_hash(&e.ws);
    let er = call(
        &e,
        S,
        "apply_patch",
        patch("*** Delete File: y.txt\n*** Delete File: ./y.txt\n"),
    )
    .await
    .unwrap_err();
    assert_eq!(er.code(), ErrorCode::NotFound);
    assert_eq!(er.0.details["path"], "/workspace/y.txt");
    assert_eq!(tree_hash(&e.ws), before);
    // A new file beneath a file is refused up front, naming both.
    let er = call(
        &e,
        S,
        "apply_patch",
        patch("*** Add File: ok.txt\n+x\n*** Add File: y.txt/inner\n+x\n"),
    )
    .await
    .unwrap_err();
    assert_eq!(er.code(), ErrorCode::BadRequest);
    assert_eq!(er.0.details["path"], "/workspace/y.txt");
    assert_eq!(tree_hash(&e.ws), before);
    // ... unless the patch deletes that file first.
    ok(
        &e,
        S,
        "apply_patch",
        patch("*** Delete File: y.txt\n*** Add File: y.txt/inner\n+x\n"),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(e.ws.join("y.txt/inner")).unwrap(),
        "x\n"
    );
}

/// The OS refuses a write halfway through (a directory the process may not write, as an
/// unprivileged user): everything done before is undone, to the very inodes.
#[test]
fn a_patch_failing_halfway_is_rolled_back() {
    if !carapace_testkit::require_root() {
        return;
    }
    let e = env(r#"mode: "off""#, "");
    let nobody = 65534;
    for d in [e.dir.path(), e.ws.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let w = e.ws.join("w");
    std::fs::create_dir(&w).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (name, text) in [("a.txt", "old\n"), ("c.txt", "keep me\n")] {
        std::fs::write(w.join(name), text).unwrap();
        std::os::unix::fs::chown(w.join(name), Some(nobody), Some(nobody)).unwrap();
    }
    std::fs::create_dir(e.ws.join("ro")).unwrap(); // root's, 0755: nobody may not write
    let before = tree_hash(&e.ws);
    let ino_a = std::fs::metadata(w.join("a.txt")).unwrap().ino();
    let ino_c = std::fs::metadata(w.join("c.txt")).unwrap().ino();

    let p = patch(
        "*** Delete File: w/c.txt\n\
         *** Update File: w/a.txt\n@@\n-old\n+new\n\
         *** Add File: w/fresh/dir/n.txt\n+n\n\
         *** Add File: w/top.txt\n+t\n\
         *** Add File: ro/b.txt\n+b\n",
    );
    let er = std::thread::scope(|s| {
        s.spawn(|| {
            let u = rustix::process::Uid::from_raw(nobody);
            rustix::thread::set_thread_res_uid(u, u, u).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(call(&e, S, "apply_patch", p))
        })
        .join()
        .unwrap()
    })
    .unwrap_err();
    assert_eq!(er.code(), ErrorCode::PermissionDenied, "{er:?}");
    assert_eq!(er.0.details["path"], "/workspace/ro/b.txt");
    assert!(er.0.details.get("rollbackFailed").is_none(), "{er:?}");
    // Every earlier change undone, to the very inodes; nothing left behind.
    assert_eq!(tree_hash(&e.ws), before);
    assert_eq!(std::fs::metadata(w.join("a.txt")).unwrap().ino(), ino_a);
    assert_eq!(std::fs::metadata(w.join("c.txt")).unwrap().ino(), ino_c);
    assert_eq!(std::fs::metadata(w.join("a.txt")).unwrap().nlink(), 1);
    assert!(!w.join("fresh").exists());
    assert!(
        staging_anywhere(&e.ws).is_empty(),
        "{:?}",
        staging_anywhere(&e.ws)
    );

    // The same patch without the refused file applies whole.
    let v = ok(
        &e,
        S,
        "apply_patch",
        patch(
            "*** Delete File: w/c.txt\n\
             *** Update File: w/a.txt\n@@\n-old\n+new\n\
             *** Add File: w/fresh/dir/n.txt\n+n\n",
        ),
    );
    let v = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(v);
    assert_eq!(v["deleted"], json!(["/workspace/w/c.txt"]));
    assert_eq!(std::fs::read_to_string(w.join("a.txt")).unwrap(), "new\n");
    assert_eq!(
        mode(&w.join("a.txt")),
        0o644,
        "a replaced file keeps its mode"
    );
    assert!(staging_anywhere(&e.ws).is_empty());
}

/// One big file under many hard-linked names is many files to a patch: what the plan holds is
/// capped (4 x maxReadBytes), so a patch cannot make the gateway hold N copies of it.
#[tokio::test]
async fn what_a_plan_holds_is_capped() {
    let e = env(r#"mode: "off""#, "tools: { fs: { maxReadBytes: 1024 } }");
    let line = "x".repeat(999);
    std::fs::write(e.ws.join("big.txt"), format!("{line}\n")).unwrap();
    let mut body = String::new();
    for i in 0..6 {
        std::fs::hard_link(e.ws.join("big.txt"), e.ws.join(format!("l{i}"))).unwrap();
        body.push_str(&format!("*** Update File: l{i}\n@@\n-{line}\n+{line}y\n"));
    }
    let before = tree_hash(&e.ws);
    let er = call(&e, S, "apply_patch", patch(&body)).await.unwrap_err();
    assert_eq!(er.code(), ErrorCode::TooLarge, "{er:?}");
    assert_eq!(er.0.details["limit"], 4096);
    assert_eq!(tree_hash(&e.ws), before);
    // Within the cap it applies (each name gets its own file: the link is broken, as with any
    // atomic replace).
    let first_three = body.split("*** Update File: l3").next().unwrap();
    let v = ok(&e, S, "apply_patch", patch(first_three)).await;
    assert_eq!(v["updated"].as_array().unwrap().len(), 3);
}
