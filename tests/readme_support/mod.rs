//! README.md's fenced blocks, for the suites that test what the README shows
//! as written (`wasmplugin_manifests.rs`, `m2m_recipes.rs`).

use kfauth_testkit::bootstrap::repo_root;

/// The fenced block of README.md in language `lang` whose first line is
/// `first_line`, without that line.
pub fn readme_fenced(lang: &str, first_line: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let fence = format!("```{lang}\n");
    let start = readme
        .find(&format!("{fence}{first_line}\n"))
        .unwrap_or_else(|| panic!("README has no {lang} block starting {first_line:?}"));
    let body = &readme[start + fence.len()..];
    body[..body.find("```").unwrap()].to_string()
}

/// The YAML block of README.md whose first line is `first_line`, without it.
pub fn readme_block(first_line: &str) -> String {
    readme_fenced("yaml", first_line)
}
