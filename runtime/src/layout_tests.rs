//! The layout rules that keep the layers pointing down, checked on the sources: `child/`
//! and `parent/` import no feature folder, `parent/` imports no child module, neither imports
//! the `Process` trait, no file imports itself through others (no cycles), and processes are started
//! and reaped in one place each.

use std::path::{Path, PathBuf};

/// The feature folders, which sit above `parent/` and `child/`.
const FEATURES: [&str; 9] = [
    "cluster",
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

/// Every `.rs` file under `dir`, with its text.
fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path, text));
            }
        }
    }
    files
}

/// Every `.rs` file under `dir`, with its code: no comments, no `#[cfg(test)]` module.
fn code_of(dir: &Path) -> Vec<(PathBuf, String)> {
    rust_files(dir)
        .into_iter()
        .map(|(path, text)| (path, without_tests(&text)))
        .collect()
}

/// Fails naming the first file under `side` (a folder of `src/`) whose code names
/// `crate::<module>::` for one of `modules`, and why that is not allowed.
fn assert_imports_none(side: &str, modules: &[&str], why: &str) {
    for (path, code) in code_of(&source_dir().join(side)) {
        for module in modules {
            let import = format!("crate::{module}::");
            assert!(
                !code.contains(&import),
                "{} imports {import}: {why}",
                path.display()
            );
        }
    }
}

#[test]
fn child_imports_no_feature_folder() {
    assert_imports_none("child", &FEATURES, "role dispatch belongs in entry.rs");
}

#[test]
fn parent_imports_no_feature_folder() {
    let why = "a feature plugs into the parent through a seam (e.g. spawn.rs's CHILD_ENVIRONMENT)";
    assert_imports_none("parent", &FEATURES, why);
}

#[test]
fn parent_imports_no_child_module() {
    let why = "the bootstrap contract is in protocol/bootstrap.rs";
    assert_imports_none("parent", &["child"], why);
}

#[test]
fn neither_side_imports_the_process_trait() {
    // `Process` sits above both sides (its hooks take a `Ctx`, its `start` returns a
    // `Handle`); they are written against `ProcessTypes` and the engine's `Hooks` instead.
    let why = "use process_types::ProcessTypes or child::hooks::Hooks";
    for side in ["parent", "child"] {
        assert_imports_none(side, &["process"], why);
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

/// No file of the runtime reaches itself through `crate::`/`super::` paths: the layers point
/// down, and inside a folder the parts do too (a cycle across two folders or root files, such
/// as `process.rs ⇄ child/ ⇄ parent/handle.rs`, fails naming the folders it spans).
#[test]
fn no_import_cycles() {
    let cycles: Vec<String> = ImportGraph::read(&source_dir())
        .cycles()
        .iter()
        .map(|cycle| {
            let concepts: std::collections::BTreeSet<&str> = cycle
                .iter()
                .map(|file| {
                    file.split('/')
                        .next()
                        .unwrap_or(file)
                        .trim_end_matches(".rs")
                })
                .collect();
            format!("across {concepts:?}: {cycle:?}")
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles {cycles:#?}");
}

/// Which source file names which, through `crate::` and `super::` paths in code.
struct ImportGraph {
    /// Module path (`["pool", "maps"]`) to file (`pool/maps.rs`).
    modules: std::collections::BTreeMap<Vec<String>, String>,
    edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl ImportGraph {
    fn read(root: &Path) -> Self {
        let files: Vec<(String, String)> = code_of(root)
            .into_iter()
            .map(|(path, code)| {
                let name = path.strip_prefix(root).unwrap().to_string_lossy();
                (name.into_owned(), code)
            })
            .collect();
        let mut graph = Self {
            modules: files
                .iter()
                .map(|(name, _)| (module_of(name), name.clone()))
                .collect(),
            edges: Default::default(),
        };
        for (name, code) in &files {
            let module = module_of(name);
            let mut targets = Vec::new();
            for (at, _) in code.match_indices("crate::") {
                paths_at(&code[at + "crate::".len()..], Vec::new(), &mut targets);
            }
            for (at, _) in code.match_indices("super::") {
                let parent = module[..module.len().saturating_sub(1)].to_vec();
                paths_at(&code[at + "super::".len()..], parent, &mut targets);
            }
            for target in targets {
                if let Some(file) = graph.resolve(&target).filter(|file| file != name) {
                    graph.edges.entry(name.clone()).or_default().insert(file);
                }
            }
        }
        graph
    }

    /// The file of the longest prefix of `path` that is a module.
    fn resolve(&self, path: &[String]) -> Option<String> {
        (1..=path.len())
            .rev()
            .find_map(|len| self.modules.get(&path[..len]).cloned())
    }

    /// Every strongly connected set of more than one file, each sorted.
    fn cycles(&self) -> Vec<Vec<String>> {
        let reach = |from: &String| {
            let mut seen = std::collections::BTreeSet::new();
            let mut pending = vec![from.clone()];
            while let Some(file) = pending.pop() {
                for next in self.edges.get(&file).into_iter().flatten() {
                    if seen.insert(next.clone()) {
                        pending.push(next.clone());
                    }
                }
            }
            seen
        };
        let reached: std::collections::BTreeMap<&String, _> = self
            .modules
            .values()
            .map(|file| (file, reach(file)))
            .collect();
        let mut cycles: Vec<Vec<String>> = Vec::new();
        for (file, from_file) in &reached {
            let mut cycle: Vec<String> = from_file
                .iter()
                .filter(|other| reached[other].contains(*file))
                .cloned()
                .collect();
            cycle.sort();
            if cycle.len() > 1 && !cycles.contains(&cycle) {
                cycles.push(cycle);
            }
        }
        cycles
    }
}

/// `pool/maps.rs` → `["pool", "maps"]`; `pool/mod.rs` → `["pool"]`; `lib.rs` → `[]`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        parts.clear();
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)] mod`.
fn without_tests(text: &str) -> String {
    let code: Vec<&str> = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect();
    let code = code.join("\n");
    let mut end = code.len();
    for (at, _) in code.match_indices("#[cfg(test)]") {
        if code[at + "#[cfg(test)]".len()..]
            .trim_start()
            .starts_with("mod ")
        {
            end = at;
            break;
        }
    }
    code[..end].to_owned()
}

/// Collects the paths written at the start of `code` below `prefix`: `a::b`, `a::{b, c::d}`.
fn paths_at(code: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut rest = code;
    loop {
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len > 0 && &rest[..len] != "self" {
            path.push(rest[..len].to_owned());
        }
        rest = &rest[len..];
        if let Some(after) = rest.strip_prefix("::") {
            rest = after;
            if let Some(group) = rest.strip_prefix('{') {
                out.push(path.clone());
                let mut depth = 0;
                let mut start = 0;
                for (at, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            paths_at(group[start..at].trim_start(), path.clone(), out);
                            return;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            paths_at(group[start..at].trim_start(), path.clone(), out);
                            start = at + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
        } else {
            out.push(path);
            return;
        }
    }
}
