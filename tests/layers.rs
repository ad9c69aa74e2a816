//! The layers of `src/` (docs/code.md), checked on the source text: no folder imports one above
//! it (`kernel` < `render` < `fs` < `fuse` < `daemon` < `main.rs`), no two files import each
//! other, and `unsafe` appears only in the kernel layer and the process's own life (`kernel/`,
//! `daemon/`, `main.rs`), each block or impl under its SAFETY comment.
//!
//! No mount and no root: the test reads the files. A file imports another when it names it in
//! a path: `use crate::…` (grouped forms too), `crate::…` in code, `super::…` (`super::*` is
//! the parent's face file), `self::…`, or a path through one of its own child modules; in
//! `main.rs`, `shmfs::…`. A path names the longest existing file of its prefix:
//! `crate::kernel::creds::cap::SYS_PTRACE` is `src/kernel/creds.rs`, `crate::fs::Attr` is
//! `src/fs/mod.rs`. Comments, string literals and `#[cfg(test)] mod … { … }` blocks are not
//! imports, nor is a `mod x;` declaration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom to top. A file may import files of its own layer and of those below.
const LAYERS: [&str; 6] = ["kernel", "render", "fs", "fuse", "daemon", "main"];

/// The layers where `unsafe` may appear (besides `main.rs`): the kernel layer and the
/// process's own life.
const UNSAFE_LAYERS: [&str; 2] = ["kernel", "daemon"];

/// How many lines above an `unsafe` block or impl its SAFETY comment may end.
const SAFETY_WITHIN: usize = 3;

// ---------------------------------------------------------------------------------------------
// Reading the source.

/// A source file, line by line: its code (comments and the insides of string and character
/// literals blanked out) and its comments.
struct Lexed {
    code: Vec<String>,
    comments: Vec<String>,
}

impl Lexed {
    fn code(&mut self, c: char) {
        self.code.last_mut().unwrap().push(c);
    }

    fn comment(&mut self, c: char) {
        self.comments.last_mut().unwrap().push(c);
    }

    /// A character of a literal: blanked out, but its line breaks kept.
    fn blank(&mut self, c: char) {
        if c == '\n' {
            self.newline();
        } else {
            self.code(' ');
        }
    }

    fn newline(&mut self) {
        self.code.push(String::new());
        self.comments.push(String::new());
    }
}

/// Splits `source` into code and comments (see [`Lexed`]).
fn lex(source: &str) -> Lexed {
    let s: Vec<char> = source.chars().collect();
    let mut out = Lexed {
        code: vec![String::new()],
        comments: vec![String::new()],
    };
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                out.comment(s[i]);
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    match s[i] {
                        '\n' => out.newline(),
                        c => out.comment(c),
                    }
                    i += 1;
                }
            }
            continue;
        }
        // Raw strings: r"…", r#"…"#, br"…", cr#"…"# (not the raw identifier r#type).
        let starts_word = i == 0 || !ident_char(s[i - 1]);
        let raw_from = match (c, at(i + 1)) {
            ('r', _) if starts_word => Some(i + 1),
            ('b' | 'c', 'r') if starts_word => Some(i + 2),
            _ => None,
        };
        if let Some(from) = raw_from {
            let hashes = s[from..].iter().take_while(|&&h| h == '#').count();
            if at(from + hashes) == '"' {
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let mut j = from + hashes + 1;
                while j < s.len() && !s[j..].starts_with(&close) {
                    j += 1;
                }
                let end = (j + close.len()).min(s.len());
                for &c in &s[i..end] {
                    out.blank(c);
                }
                i = end;
                continue;
            }
        }
        if c == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(s.len());
            for &c in &s[i..end] {
                out.blank(c);
            }
            i = end;
            continue;
        }
        if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}', '"'), or else a lifetime or label.
            let end = if at(i + 1) == '\\' {
                let mut j = i + 3;
                while j < s.len() && s[j] != '\'' {
                    j += 1;
                }
                Some(j + 1)
            } else if at(i + 2) == '\'' {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = end {
                let end = end.min(s.len());
                for &c in &s[i..end] {
                    out.blank(c);
                }
                i = end;
                continue;
            }
        }
        match c {
            '\n' => out.newline(),
            c => out.code(c),
        }
        i += 1;
    }
    out
}

/// A token of code and its line (1-based).
#[derive(Debug)]
struct Tok {
    text: String,
    line: usize,
}

/// The tokens of lexed code: identifiers (and numbers), `::`, and single punctuation.
fn tokens(code: &[String]) -> Vec<Tok> {
    let mut toks = Vec::new();
    for (n, line) in code.iter().enumerate() {
        let s: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            let len = if c.is_whitespace() {
                i += 1;
                continue;
            } else if c.is_alphanumeric() || c == '_' {
                s[i..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .count()
            } else if c == ':' && s.get(i + 1) == Some(&':') {
                2
            } else {
                1
            };
            toks.push(Tok {
                text: s[i..i + len].iter().collect(),
                line: n + 1,
            });
            i += len;
        }
    }
    toks
}

// ---------------------------------------------------------------------------------------------
// Resolving paths to files.

/// The module path of a file of `src/` (`fs/tree.rs` is `fs::tree`, `fs/mod.rs` and `fs.rs`
/// are `fs`, `lib.rs` the crate root); `None` for `main.rs`, the root of another crate.
fn module_of(file: &str) -> Option<Vec<String>> {
    if file == "main.rs" {
        return None;
    }
    let stem = file.strip_suffix(".rs")?;
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    Some(match stem {
        "lib" => Vec::new(),
        _ => stem.split('/').map(String::from).collect(),
    })
}

/// The file of module `path`, if `files` has one.
fn file_of(path: &[String], files: &BTreeSet<String>) -> Option<String> {
    if path.is_empty() {
        return files.get("lib.rs").cloned();
    }
    let base = path.join("/");
    [format!("{base}.rs"), format!("{base}/mod.rs")]
        .into_iter()
        .find(|f| files.contains(f))
}

/// The file that `path`, written in module `module` (`None`: in `main.rs`), names: the longest
/// prefix of it that is a file of `files`. `None` for paths outside the crate (`std::…`,
/// `libc::…`, local items).
fn resolve(module: Option<&[String]>, path: &[String], files: &BTreeSet<String>) -> Option<String> {
    let first = path.first()?.as_str();
    let absolute: Vec<String> = match (module, first) {
        // In main.rs, the library is `shmfs` and `crate` is main.rs itself.
        (None, "shmfs") => path[1..].to_vec(),
        (None, _) => return None,
        (Some(_), "crate") => path[1..].to_vec(),
        (Some(m), "self") => [m, &path[1..]].concat(),
        (Some(m), "super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let kept = m.len().checked_sub(ups)?;
            [&m[..kept], &path[ups..]].concat()
        }
        // A path through a child module of this one.
        (Some(m), child) if file_of(&[m, &[child.to_string()]].concat(), files).is_some() => {
            [m, path].concat()
        }
        _ => return None,
    };
    (0..=absolute.len())
        .rev()
        .find_map(|k| file_of(&absolute[..k], files))
}

/// The paths a `use` tree names, from `toks[*i]` to its end (`;`, or `,` / `}` in a group),
/// each with the line of its last segment: `a::{b, c::{self, d}}` names `a::b`, `a::c` and
/// `a::c::d`; a glob `a::*` names `a`.
fn use_paths(toks: &[Tok], i: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, usize)>) {
    let mut path = prefix.to_vec();
    while let Some(tok) = toks.get(*i) {
        match tok.text.as_str() {
            "{" => {
                *i += 1;
                while toks.get(*i).is_some_and(|t| t.text != "}") {
                    use_paths(toks, i, &path, out);
                    if toks.get(*i).is_some_and(|t| t.text == ",") {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            "*" => {
                *i += 1;
                out.push((path, tok.line));
                return;
            }
            "::" => *i += 1,
            "," | "}" | ";" => return,
            word => {
                // `self` in a group is the group's own path.
                if word != "self" || path.is_empty() {
                    path.push(word.to_string());
                }
                *i += 1;
                if toks.get(*i).is_some_and(|t| t.text == "::") {
                    continue;
                }
                if toks.get(*i).is_some_and(|t| t.text == "as") {
                    *i += 2;
                }
                out.push((path, tok.line));
                return;
            }
        }
    }
}

/// Whether the `mod` at `toks[at]` is under `#[cfg(test)]`.
fn under_cfg_test(toks: &[Tok], at: usize) -> bool {
    let text = |j: usize| toks[j].text.as_str();
    let mut j = at;
    // Past a visibility: `pub`, `pub(crate)`, `pub(super)`.
    if j >= 4 && text(j - 1) == ")" && text(j - 3) == "(" && text(j - 4) == "pub" {
        j -= 4;
    } else if j >= 1 && text(j - 1) == "pub" {
        j -= 1;
    }
    // Back over each attribute `#[ … ]`.
    while j >= 1 && text(j - 1) == "]" {
        let mut depth = 0;
        let mut k = j - 1;
        loop {
            match text(k) {
                "]" => depth += 1,
                "[" => depth -= 1,
                _ => {}
            }
            if depth == 0 || k == 0 {
                break;
            }
            k -= 1;
        }
        let inside: Vec<&str> = (k + 1..j - 1).map(text).collect();
        if inside == ["cfg", "(", "test", ")"] {
            return true;
        }
        if k == 0 || text(k - 1) != "#" {
            return false;
        }
        j = k - 1;
    }
    false
}

/// An import: the file named, and the line naming it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    file: String,
    line: usize,
}

/// The files of `files` that `file` (a path under `src/`, whose text is `source`) imports,
/// in order of appearance, itself excepted.
fn imports(file: &str, source: &str, files: &BTreeSet<String>) -> Vec<Import> {
    let toks = tokens(&lex(source).code);
    let base = module_of(file);
    let text = |j: usize| toks.get(j).map_or("", |t| t.text.as_str());
    let mut found = Vec::new();
    // Inline modules open around the token (name, depth inside), and the depth inside a
    // `#[cfg(test)]` module being skipped.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut skipping: Option<usize> = None;
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        match text(i) {
            "{" => {
                depth += 1;
                i += 1;
                continue;
            }
            "}" => {
                if skipping == Some(depth) {
                    skipping = None;
                }
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
                continue;
            }
            _ if skipping.is_some() => {
                i += 1;
                continue;
            }
            "mod" if text(i + 2) == "{" => {
                if under_cfg_test(&toks, i) {
                    skipping = Some(depth + 1);
                } else {
                    inline.push((text(i + 1).to_string(), depth + 1));
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        let module: Option<Vec<String>> = base
            .as_ref()
            .map(|b| [b.clone(), inline.iter().map(|(n, _)| n.clone()).collect()].concat());
        let mut paths = Vec::new();
        if text(i) == "use" {
            i += 1;
            while i < toks.len() && text(i) != ";" {
                let before = i;
                use_paths(&toks, &mut i, &[], &mut paths);
                i = i.max(before + 1);
            }
        } else if text(i + 1) == "::" && text(i.wrapping_sub(1)) != "::" {
            // A path in code: its words up to the first that is not followed by `::`.
            let mut path = Vec::new();
            let mut line = toks[i].line;
            while toks.get(i).is_some_and(|t| is_word(&t.text)) {
                path.push(text(i).to_string());
                line = toks[i].line;
                if text(i + 1) != "::" {
                    break;
                }
                i += 2;
            }
            paths.push((path, line));
        }
        i += 1;
        for (path, line) in paths {
            if let Some(target) = resolve(module.as_deref(), &path, files)
                && target != file
            {
                found.push(Import { file: target, line });
            }
        }
    }
    found
}

fn is_word(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

// ---------------------------------------------------------------------------------------------
// `unsafe`.

/// The `unsafe` of `file` (under `src/`, text `source`) that breaks the rules: outside the
/// allowed folders at all, or a block or impl without a SAFETY comment ending within
/// [`SAFETY_WITHIN`] lines above it (or on its line). One message per occurrence.
fn unsafe_violations(file: &str, source: &str) -> Vec<String> {
    let lexed = lex(source);
    let toks = tokens(&lexed.code);
    let allowed = file == "main.rs" || UNSAFE_LAYERS.contains(&layer_name(file));
    let comment = |line: usize| lexed.comments[line - 1].as_str();
    let comment_only =
        |line: usize| lexed.code[line - 1].trim().is_empty() && !comment(line).is_empty();
    let has_safety = |line: usize| {
        (line.saturating_sub(SAFETY_WITHIN).max(1)..=line).any(|l| {
            // The whole comment that ends on line `l`.
            let mut top = l;
            while top > 1 && comment_only(l) && comment_only(top - 1) {
                top -= 1;
            }
            (top..=l).any(|k| comment(k).contains("SAFETY"))
        })
    };
    let mut found = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        if tok.text != "unsafe" {
            continue;
        }
        let next = toks.get(i + 1).map_or("", |t| t.text.as_str());
        if !allowed {
            found.push(format!(
                "src/{file}:{}: `unsafe` outside src/kernel/, src/daemon/ and src/main.rs",
                tok.line
            ));
        } else if (next == "{" || next == "impl") && !has_safety(tok.line) {
            found.push(format!(
                "src/{file}:{}: `unsafe {next}` without a SAFETY comment in the {SAFETY_WITHIN} lines above",
                tok.line
            ));
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The source tree.

/// The layer's name of a file of `src/`: its first folder, or its name (`kernel.rs` is in
/// `kernel`; `lib.rs`, which only declares the modules, counts as `main`).
fn layer_name(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    match first.strip_suffix(".rs").unwrap_or(first) {
        "lib" => "main",
        name => name,
    }
}

fn layer_rank(file: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer_name(file))
}

/// Every `.rs` file under `src/`, by its path below `src/`, with its text.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, under: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("reading src/") {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if under.is_empty() {
                name.clone()
            } else {
                format!("{under}/{name}")
            };
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &rel, out);
            } else if name.ends_with(".rs") {
                out.insert(rel, std::fs::read_to_string(entry.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut out,
    );
    out
}

/// Who imports whom in `src/`: importer → imported → the lines naming it.
fn graph() -> BTreeMap<String, BTreeMap<String, Vec<usize>>> {
    let sources = sources();
    let files: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (file, source) in &sources {
        let mut targets: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for import in imports(file, source, &files) {
            let at: &mut Vec<usize> = targets.entry(import.file).or_default();
            if at.last() != Some(&import.line) {
                at.push(import.line);
            }
        }
        graph.insert(file.clone(), targets);
    }
    // The reading must find the imports that are there, or every check below passes.
    let edges: usize = graph.values().map(BTreeMap::len).sum();
    assert!(
        sources.len() > 20 && edges > 60,
        "read {} files and {edges} imports in src/: the reader is broken",
        sources.len()
    );
    graph
}

fn lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn no_folder_imports_a_higher_one() {
    let mut wrong = Vec::new();
    for (file, targets) in graph() {
        let Some(rank) = layer_rank(&file) else {
            wrong.push(format!(
                "src/{file}: in no layer (add its folder to LAYERS in tests/layers.rs)"
            ));
            continue;
        };
        for (target, at) in targets {
            if layer_rank(&target).is_some_and(|r| r > rank) {
                wrong.push(format!(
                    "src/{file}:{} ({}) imports src/{target} ({}), a higher layer",
                    lines(&at),
                    layer_name(&file),
                    layer_name(&target)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layers are {}; imports against them:\n  {}",
        LAYERS.join(" < "),
        wrong.join("\n  ")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let graph = graph();
    let mut pairs = Vec::new();
    for (a, targets) in &graph {
        for (b, at_a) in targets {
            if a < b
                && let Some(at_b) = graph.get(b).and_then(|t| t.get(a))
            {
                pairs.push(format!(
                    "src/{a}:{} imports src/{b}, and src/{b}:{} imports src/{a}",
                    lines(at_a),
                    lines(at_b)
                ));
            }
        }
    }
    assert!(
        pairs.is_empty(),
        "files that import each other:\n  {}",
        pairs.join("\n  ")
    );
}

#[test]
fn unsafe_only_in_the_kernel_and_the_daemon_and_under_a_safety_comment() {
    let wrong: Vec<String> = sources()
        .iter()
        .flat_map(|(file, source)| unsafe_violations(file, source))
        .collect();
    assert!(
        wrong.is_empty(),
        "unsafe out of place:\n  {}",
        wrong.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The reader itself, on made-up files, so that it cannot pass by finding nothing.

fn tree() -> BTreeSet<String> {
    [
        "lib.rs",
        "main.rs",
        "kernel.rs",
        "kernel/creds.rs",
        "kernel/sysv.rs",
        "fs/mod.rs",
        "fs/tree.rs",
        "fs/inode.rs",
        "daemon.rs",
        "daemon/sandbox.rs",
        "daemon/sandbox/caps.rs",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// The files `file` imports, as `file:line`.
fn names(file: &str, source: &str) -> Vec<String> {
    imports(file, source, &tree())
        .into_iter()
        .map(|i| format!("{}:{}", i.file, i.line))
        .collect()
}

fn path(s: &str) -> Vec<String> {
    s.split("::").map(String::from).collect()
}

#[test]
fn a_path_names_the_longest_file_of_its_prefix() {
    let files = tree();
    let fs_tree = module_of("fs/tree.rs").unwrap();
    let at = |m: &[String], p: &str| resolve(Some(m), &path(p), &files);
    let tree = Some("fs/tree.rs".to_string());
    assert_eq!(
        at(&fs_tree, "crate::kernel::creds::cap::SYS_PTRACE").as_deref(),
        Some("kernel/creds.rs")
    );
    assert_eq!(
        at(&fs_tree, "crate::kernel::creds").as_deref(),
        Some("kernel/creds.rs")
    );
    assert_eq!(at(&fs_tree, "crate::kernel").as_deref(), Some("kernel.rs"));
    assert_eq!(
        at(&fs_tree, "crate::fs::Attr").as_deref(),
        Some("fs/mod.rs")
    );
    assert_eq!(at(&fs_tree, "crate::Something").as_deref(), Some("lib.rs"));
    assert_eq!(at(&fs_tree, "super").as_deref(), Some("fs/mod.rs"));
    assert_eq!(
        at(&fs_tree, "super::inode::Node").as_deref(),
        Some("fs/inode.rs")
    );
    assert_eq!(at(&fs_tree, "self::Thing"), tree);
    assert_eq!(at(&fs_tree, "std::fs::File"), None);
    assert_eq!(at(&fs_tree, "libc::EPERM"), None);
    let fs = module_of("fs/mod.rs").unwrap();
    assert_eq!(at(&fs, "tree::Removed"), tree);
    assert_eq!(
        at(&fs, "super::kernel::sysv").as_deref(),
        Some("kernel/sysv.rs")
    );
    let sandbox = module_of("daemon/sandbox.rs").unwrap();
    assert_eq!(
        at(&sandbox, "caps::drop_all").as_deref(),
        Some("daemon/sandbox/caps.rs")
    );
    assert_eq!(
        at(&sandbox, "super::super::fs::tree").as_deref(),
        Some("fs/tree.rs")
    );
    assert_eq!(
        resolve(None, &path("shmfs::fs::ShmFs"), &files).as_deref(),
        Some("fs/mod.rs")
    );
    assert_eq!(resolve(None, &path("fs::read"), &files), None);
}

#[test]
fn use_trees_are_read_whole() {
    let source = "\
use std::fs::File;
use super::*;
pub use tree::Removed;
use crate::{kernel::{self, sysv::Segment}, daemon::sandbox::{caps, seccomp::Rule as R}};
use crate::kernel::creds::{
    self,
    Caller,
};
";
    assert_eq!(
        names("fs/inode.rs", source),
        [
            "fs/mod.rs:2",
            "kernel.rs:4",
            "kernel/sysv.rs:4",
            "daemon/sandbox/caps.rs:4",
            "daemon/sandbox.rs:4",
            "kernel/creds.rs:6",
            "kernel/creds.rs:7",
        ]
    );
    // In a face file, `super` is the folder's parent, and a child module's path is a path.
    assert_eq!(
        names("fs/mod.rs", source)[..3],
        ["lib.rs:2", "fs/tree.rs:3", "kernel.rs:4"]
    );
}

#[test]
fn paths_in_code_count_and_comments_strings_declarations_and_tests_do_not() {
    let source = r##"//! See crate::daemon::sandbox for the confinement.
mod inode;
pub mod tree;
/* crate::daemon::sandbox::caps, /* nested */ crate::daemon */
fn f() -> u32 {
    let s = "crate::daemon::sandbox";
    let r = r#"crate::daemon "quoted" "#;
    let c = '"'; let d = '\''; let e: &'static str = "";
    let n = crate::kernel::creds::cap::SYS_ADMIN + inode::count(); // crate::daemon
    x::<crate::kernel::sysv::Segment>()
}

mod inner {
    use super::*;
    pub fn g() { super::super::kernel::sysv::id() }
}

#[cfg(test)]
mod tests {
    use crate::daemon::sandbox;
    fn t() { crate::daemon::sandbox::caps::drop(); }
}
"##;
    assert_eq!(
        names("fs/mod.rs", source),
        [
            "kernel/creds.rs:9",
            "fs/inode.rs:9",
            "kernel/sysv.rs:10",
            "kernel/sysv.rs:15"
        ]
    );
}

#[test]
fn unsafe_is_checked_for_its_place_and_its_comment() {
    let source = "\
fn f() {
    // SAFETY: plain call.
    let a = unsafe { libc::getpid() };
    // SAFETY: a long reason,
    // on two lines,
    // then three.
    #[cfg(target_env = \"gnu\")]
    let b = unsafe { libc::getpid() };
    let s = \"unsafe { }\"; // unsafe { }

    let c = unsafe { libc::getpid() };
}
unsafe impl Send for X {}
";
    assert_eq!(
        unsafe_violations("kernel/x.rs", source),
        [
            "src/kernel/x.rs:11: `unsafe {` without a SAFETY comment in the 3 lines above",
            "src/kernel/x.rs:13: `unsafe impl` without a SAFETY comment in the 3 lines above",
        ]
    );
    assert_eq!(unsafe_violations("fs/x.rs", source).len(), 4);
    assert_eq!(unsafe_violations("fuse.rs", source).len(), 4);
    assert!(unsafe_violations("main.rs", "// SAFETY: ok\nunsafe { f() }").is_empty());
    assert!(unsafe_violations("daemon.rs", "// SAFETY: ok\nunsafe { f() }").is_empty());
    assert_eq!(
        unsafe_violations("lib.rs", "// SAFETY: ok\nunsafe { f() }").len(),
        1
    );
    assert!(unsafe_violations("fs/x.rs", "// unsafe { }\nlet s = \"unsafe\";").is_empty());
}

#[test]
fn files_have_their_layers() {
    assert_eq!(layer_name("kernel.rs"), "kernel");
    assert_eq!(layer_name("kernel/sysv.rs"), "kernel");
    assert_eq!(layer_name("fs/mod.rs"), "fs");
    assert_eq!(layer_name("fuse.rs"), "fuse");
    assert_eq!(layer_name("daemon/sandbox/caps.rs"), "daemon");
    assert_eq!(layer_name("lib.rs"), "main");
    assert!(layer_rank("kernel/sysv.rs") < layer_rank("render/text.rs"));
    assert!(layer_rank("fuse.rs") < layer_rank("daemon.rs"));
    assert_eq!(layer_rank("other/x.rs"), None);
    assert_eq!(module_of("fs/mod.rs").unwrap(), ["fs"]);
    assert_eq!(module_of("lib.rs").unwrap(), Vec::<String>::new());
    assert_eq!(module_of("main.rs"), None);
}
