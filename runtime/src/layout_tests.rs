//! The layout rules that keep the layers pointing down, checked on the sources: `child/`
//! imports no feature folder, `parent/` imports no child module, and processes are started
//! and reaped in one place each.

use std::path::{Path, PathBuf};

/// The feature folders, which sit above `parent/` and `child/`.
const FEATURES: [&str; 8] = [
    "pool",
    "share",
    "pipe",
    "queue",
    "process_queue",
    "worker",
    "reconnect",
    "logs",
];

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its code before any `#[cfg(test)]` module and without
/// comments.
fn code_of(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: Vec<&str> = code
                    .lines()
                    .map(|line| line.split("//").next().unwrap_or_default())
                    .collect();
                files.push((path, code.join("\n")));
            }
        }
    }
    files
}

#[test]
fn child_imports_no_feature_folder() {
    for (path, code) in code_of(&source_dir().join("child")) {
        for feature in FEATURES {
            let import = format!("crate::{feature}::");
            assert!(
                !code.contains(&import),
                "{} imports {import}: role dispatch belongs in entry.rs",
                path.display()
            );
        }
    }
}

#[test]
fn parent_imports_no_child_module() {
    for (path, code) in code_of(&source_dir().join("parent")) {
        assert!(
            !code.contains("crate::child::"),
            "{} imports from child/: the bootstrap contract is in protocol/bootstrap.rs",
            path.display()
        );
    }
}

#[test]
fn processes_are_spawned_and_reaped_in_one_place() {
    for (path, code) in code_of(&source_dir()) {
        // The same names on Windows, whose paths separate with `\\`.
        let name = path
            .strip_prefix(source_dir())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if name.ends_with("tests.rs") {
            continue;
        }
        if name != "parent/spawn.rs" {
            assert!(
                !code.contains("Command::new("),
                "{name} starts a process: use parent/spawn.rs"
            );
        }
        if name != "parent/reaper.rs" {
            for reap in ["try_wait(", "child.wait("] {
                assert!(
                    !code.contains(reap),
                    "{name} reaps a child ({reap}): use parent/reaper.rs"
                );
            }
        }
    }
}
