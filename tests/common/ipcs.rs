//! The kernel's and util-linux's own views of System V segments, to compare shmfs with:
//! /proc/sysvipc/shm, `ipcs -m`, `ipcs -m -u`, `ipcmk`.

use std::collections::{BTreeSet, HashMap};
use std::fs;

use super::run::sh_ok;

/// The row of /proc/sysvipc/shm for `id`, as column name -> value.
pub fn proc_sysvipc_row(id: i32) -> Option<HashMap<String, String>> {
    let text = fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let shmid_col = header.iter().position(|h| *h == "shmid")?;
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.get(shmid_col) == Some(&id.to_string().as_str()) {
            return Some(
                header
                    .iter()
                    .zip(cols)
                    .map(|(h, c)| (h.to_string(), c.to_string()))
                    .collect(),
            );
        }
    }
    None
}

/// The shmids `ipcs -m` lists.
pub fn ipcs_m_ids() -> BTreeSet<i32> {
    let out = sh_ok("ipcs -m");
    out.lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("cannot parse `ipcs -m` line {l:?}"))
        })
        .collect()
}

/// The "name value" lines of `ipcs -m -u` ("segments allocated 3" -> ("segments allocated", 3)).
pub fn ipcs_m_u() -> HashMap<String, u64> {
    sh_ok("ipcs -m -u")
        .lines()
        .filter_map(|l| {
            let (name, val) = l.trim().rsplit_once(char::is_whitespace)?;
            Some((name.trim().to_string(), val.parse().ok()?))
        })
        .collect()
}

/// Runs `ipcmk -M size -p mode` and returns the new shmid, parsed from "Shared memory id: N".
pub fn ipcmk(size: usize, mode: &str) -> i32 {
    let out = sh_ok(&format!("ipcmk -M {size} -p {mode}"));
    parse_ipcmk(&out)
}

pub fn parse_ipcmk(out: &str) -> i32 {
    out.lines()
        .find_map(|l| l.strip_prefix("Shared memory id: "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Shared memory id: N` in ipcmk output {out:?}"))
}
