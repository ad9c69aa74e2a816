//! The `name: value` text of `stat`, `perm` and `limits`, parsed (`Fields`), modes formatted
//! as those files show them, and the pids an `attached` text names.

use std::path::Path;

use super::files::read_text;

/// The `name: value` lines of a text file, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(text: &str) -> Fields {
        assert!(
            text.ends_with('\n'),
            "text does not end with a newline: {text:?}"
        );
        Fields(
            text.lines()
                .map(|l| {
                    let (n, v) = l
                        .split_once(": ")
                        .unwrap_or_else(|| panic!("line {l:?} is not `name: value` in {text:?}"));
                    (n.to_string(), v.to_string())
                })
                .collect(),
        )
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[track_caller]
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no `{name}:` line in {:?}", self.0))
    }

    #[track_caller]
    pub fn num(&self, name: &str) -> u64 {
        let v = self.get(name);
        v.parse()
            .unwrap_or_else(|_| panic!("`{name}: {v}` is not a decimal number"))
    }
}

/// Reads a text file of the mount and parses its `name: value` lines.
pub fn read_fields(p: &Path) -> Fields {
    Fields::parse(&read_text(p))
}

/// Formats a mode as in stat/perm: `0%03o` of the permission bits.
pub fn fmt_mode(mode: u32) -> String {
    format!("0{:03o}", mode & 0o777)
}

/// The first word of every line of an `attached` text: the pids of the processes it names, in
/// its order. A `+N hidden` line gives `+N`, so a test comparing with pids alone sees it.
pub fn attached_pids(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.split(' ').next().unwrap()).collect()
}
