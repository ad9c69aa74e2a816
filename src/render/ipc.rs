//! TEMPORARY SHIM (replaced by the render branch).
use crate::kernel::mqueue::MqInfo;
use crate::kernel::msg::{MsgLimits, Queue};
use crate::kernel::posix_sem::SemState;
use crate::kernel::sem::{SemLimits, SemSet, SemValue};
use crate::render::metrics::Out;
use std::collections::HashMap;
pub enum ValuesWrite {
    All(Vec<u16>),
    Each(Vec<(u16, u16)>),
}
pub fn sem_stat(s: &SemSet) -> String {
    format!("kind: sem\nsemid: {}\n", s.semid)
}
pub fn sem_values(v: &[SemValue]) -> String {
    format!("{v:?}\n")
}
pub fn parse_sem_values(data: &[u8], _nsems: usize, _semvmx: u32) -> Result<ValuesWrite, String> {
    let t = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let n: Vec<u16> = t
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Ok(ValuesWrite::Each(vec![(n[0], n[1])]))
}
pub fn sem_waiters(w: &[crate::kernel::sem::Waiter], hidden: usize) -> String {
    format!("{w:?} {hidden}\n")
}
pub fn msg_stat(q: &Queue) -> String {
    format!("kind: msg\nmsqid: {}\n", q.msqid)
}
pub fn msg_perm(mode: u32, uid: u32, gid: u32, qbytes: u64) -> String {
    format!(
        "{}qbytes: {qbytes}\n",
        crate::render::text::perm(mode, uid, gid)
    )
}
pub fn msg_queue(m: &[(i64, usize)], qnum: u64) -> String {
    format!("{m:?} {qnum}\n")
}
pub fn msg_waiters(w: &[crate::kernel::msg::Waiter], hidden: usize) -> String {
    format!("{w:?} {hidden}\n")
}
pub fn mqueue_stat(q: &MqInfo) -> String {
    format!("kind: mqueue\n{q:?}\n")
}
pub fn posix_sem_lines(s: &SemState) -> String {
    format!(
        "semaphore: yes\nvalue: {}\nwaiters: {}\n",
        s.value, s.waiters_hint
    )
}
pub fn sem_limits(l: &SemLimits) -> String {
    format!("{l:?}\n")
}
pub fn msg_limits(l: &MsgLimits) -> String {
    format!("{l:?}\n")
}
pub fn mqueue_limits(a: u64, b: u64, c: u64, d: u64) -> String {
    format!("{a} {b} {c} {d}\n")
}
