//! The user documentation keeps up with the code: the troubleshooting page has a section for
//! every error code of the table, and README.md links the pages a newcomer needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn doc(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn troubleshooting_has_a_section_for_every_error_code() {
    let page = doc("docs/troubleshooting.md");
    let table = doc("docs/errors.md");
    let codes: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(codes.len() > 30, "{codes:?}");
    for code in &codes {
        assert!(
            page.contains(&format!("\n## `{code}`\n")),
            "docs/troubleshooting.md has no section for {code}"
        );
    }
    let sections = page.lines().filter(|l| l.starts_with("## `")).count();
    assert_eq!(
        sections,
        codes.len(),
        "a section for a code that does not exist"
    );
}

#[test]
fn the_readme_links_the_newcomer_pages() {
    let readme = doc("README.md");
    for page in [
        "docs/getting-started.md",
        "docs/openclaw-users.md",
        "docs/troubleshooting.md",
    ] {
        assert!(
            readme.contains(&format!("]({page})")),
            "README.md does not link {page}"
        );
        assert!(!doc(page).is_empty());
    }
}
