//! `kernel::msg` against the real kernel (issue 24's groundwork): listing, peeking without
//! touching, permissions as the kernel checks them, IPC_SET of qbytes, waiters. Needs root for
//! the credential tests; every test makes and removes its own queues only.

mod common;

use std::io;
use std::time::{Duration, Instant};

use common::*;
use shmfs::kernel::creds::{Caller, as_caller};
use shmfs::kernel::msg;

/// Lets a process raise a queue's qbytes above msgmnb (linux/capability.h).
const CAP_SYS_RESOURCE: u32 = 24;

/// A queue of this test; removed (IPC_RMID) when dropped.
struct TestQueue {
    id: i32,
}

impl TestQueue {
    fn new(mode: u32) -> TestQueue {
        Self::with_key(libc::IPC_PRIVATE, mode)
    }

    fn with_key(key: libc::key_t, mode: u32) -> TestQueue {
        let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | mode as i32) };
        assert!(id >= 0, "msgget: {}", io::Error::last_os_error());
        TestQueue { id }
    }

    fn send(&self, mtype: i64, bytes: &[u8]) {
        send(self.id, mtype, bytes).expect("msgsnd");
    }

    /// `IPC_STAT`: (stime, rtime, lspid, lrpid, qnum, cbytes), what looking must not change.
    fn evidence(&self) -> (i64, i64, i32, i32, u64, u64) {
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::msgctl(self.id, libc::IPC_STAT, &mut ds) }, 0);
        (
            ds.msg_stime,
            ds.msg_rtime,
            ds.msg_lspid,
            ds.msg_lrpid,
            ds.msg_qnum,
            ds.__msg_cbytes,
        )
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// `msgsnd` of one message (blocking unless the queue has room).
fn send(id: i32, mtype: i64, bytes: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; 8 + bytes.len()];
    buf[..8].copy_from_slice(&mtype.to_ne_bytes());
    buf[8..].copy_from_slice(bytes);
    let rc = unsafe { libc::msgsnd(id, buf.as_ptr() as *const libc::c_void, bytes.len(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn msgmax() -> usize {
    msg::limits().expect("limits").msgmax as usize
}

fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    r.expect_err("an error").raw_os_error().unwrap_or(0)
}

/// Whether this kernel copies messages (MSG_COPY, CONFIG_CHECKPOINT_RESTORE): a skip without,
/// a failure under CI.
fn copy_works() -> bool {
    let q = TestQueue::new(0o600);
    q.send(1, b"x");
    match msg::peek(q.id, 0, msgmax()) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => unavailable(
            "this kernel lacks MSG_COPY (CONFIG_CHECKPOINT_RESTORE): messages cannot be peeked",
        ),
        Err(e) => panic!("peek: {e}"),
    }
}

fn root() -> bool {
    let euid = unsafe { libc::geteuid() };
    euid == 0 || unavailable("credential tests need root")
}

#[test]
fn listing_finds_the_queue_with_its_counts() {
    let q = TestQueue::new(0o640);
    q.send(1, b"hello");
    q.send(7, b"world!!");
    let limits = msg::limits().unwrap();
    let all = msg::queues().unwrap();
    let found = all
        .iter()
        .find(|x| x.msqid == q.id)
        .expect("the test's queue is listed");
    assert_eq!((found.qnum, found.cbytes), (2, 12));
    assert_eq!(
        found.qbytes, limits.msgmnb,
        "a new queue's qbytes is msgmnb"
    );
    assert_eq!(found.mode, 0o640);
    assert_eq!(found.key, 0);
    assert_eq!(found.lspid, std::process::id() as i32);
    assert_eq!(found.lrpid, 0);
    assert_eq!(&msg::queue(q.id).unwrap(), found);
    assert!(limits.queues_used >= 1 && limits.messages_used >= 2 && limits.bytes_used >= 12);
}

#[test]
fn a_gone_queue_or_a_reused_slot_is_enoent() {
    let q = TestQueue::new(0o600);
    let id = q.id;
    drop(q);
    assert_eq!(errno_of(msg::queue(id)), libc::ENOENT);
    assert_eq!(errno_of(msg::queue(-1)), libc::ENOENT);
    assert_eq!(errno_of(msg::queue_with_key(0)), libc::ENOENT);
    // The next queue in that slot has another msqid (the sequence number moves on).
    let next = TestQueue::new(0o600);
    if next.id != id {
        assert_eq!(errno_of(msg::queue(id)), libc::ENOENT);
    }
}

#[test]
fn a_queue_is_found_by_its_key() {
    let key = random_key();
    let q = TestQueue::with_key(key, 0o600);
    let found = msg::queue_with_key(key as u32).unwrap();
    assert_eq!((found.msqid, found.key), (q.id, key as u32));
    drop(q);
    assert_eq!(errno_of(msg::queue_with_key(key as u32)), libc::ENOENT);
}

#[test]
fn peek_returns_each_message_and_enomsg_past_the_end() {
    if !copy_works() {
        return;
    }
    let q = TestQueue::new(0o600);
    q.send(1, b"hello");
    q.send(7, b"world!!");
    q.send(3, b"");
    let max = msgmax();
    let m0 = msg::peek(q.id, 0, max).unwrap();
    assert_eq!((m0.mtype, m0.bytes.as_slice()), (1, &b"hello"[..]));
    let m1 = msg::peek(q.id, 1, max).unwrap();
    assert_eq!((m1.mtype, m1.bytes.as_slice()), (7, &b"world!!"[..]));
    let m2 = msg::peek(q.id, 2, max).unwrap();
    assert_eq!((m2.mtype, m2.bytes.len()), (3, 0));
    assert_eq!(errno_of(msg::peek(q.id, 3, max)), libc::ENOMSG);
    assert_eq!(
        errno_of(msg::peek(q.id, 1, 3)),
        libc::E2BIG,
        "a buffer smaller than the message"
    );
    assert_eq!(
        msg::listing(q.id, max, 100).unwrap(),
        vec![(1, 5), (7, 7), (3, 0)]
    );
    assert_eq!(msg::listing(q.id, max, 2).unwrap(), vec![(1, 5), (7, 7)]);
    // A full-size message comes back whole.
    let big: Vec<u8> = (0..max).map(|i| i as u8).collect();
    let q2 = TestQueue::new(0o600);
    q2.send(9, &big);
    assert_eq!(msg::peek(q2.id, 0, max).unwrap().bytes, big);
    let id = q2.id;
    drop(q2);
    assert_eq!(errno_of(msg::peek(id, 0, max)), libc::ENOENT);
}

/// Sends and receives one message in a child process, so that lspid and lrpid name another
/// process than this one (a touch by this one would show).
fn traffic_from_a_child(id: i32) {
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // Only system calls between fork and _exit.
        let buf: [i64; 2] = [5, 0];
        unsafe {
            let ok = libc::msgsnd(id, buf.as_ptr() as *const libc::c_void, 4, 0) == 0;
            let mut out = [0i64; 2];
            let got = libc::msgrcv(
                id,
                out.as_mut_ptr() as *mut libc::c_void,
                8,
                5,
                libc::IPC_NOWAIT,
            );
            libc::_exit(if ok && got == 4 { 0 } else { 1 });
        }
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

#[test]
fn looking_is_not_touching() {
    let copies = copy_works();
    let q = TestQueue::new(0o600);
    q.send(1, b"first");
    q.send(2, b"second");
    traffic_from_a_child(q.id);
    // A touch now would move stime or rtime to a later second.
    std::thread::sleep(Duration::from_millis(1100));
    let before = q.evidence();
    assert_ne!(before.2, std::process::id() as i32, "lspid is the child's");
    assert_ne!(before.3, 0, "lrpid is the child's");
    let max = msgmax();
    for _ in 0..3 {
        msg::queue(q.id).unwrap();
        msg::queues().unwrap();
        msg::limits().unwrap();
        msg::blocked_on(q.id).unwrap();
        if copies {
            assert_eq!(msg::peek(q.id, 1, max).unwrap().bytes, b"second");
            assert_eq!(msg::listing(q.id, max, 1024).unwrap().len(), 2);
            assert_eq!(errno_of(msg::peek(q.id, 2, max)), libc::ENOMSG);
        }
    }
    assert_eq!(
        q.evidence(),
        before,
        "stime, rtime, lspid, lrpid, qnum, cbytes"
    );
}

#[test]
fn peek_needs_read_permission() {
    if !root() || !copy_works() {
        return;
    }
    let someone = Caller::new(54321, 54321, 0);
    let write_only = TestQueue::new(0o602);
    write_only.send(1, b"secret");
    let readable = TestQueue::new(0o604);
    readable.send(2, b"open");
    let max = msgmax();
    let (refused, listed, allowed, stat) = as_caller(&someone, || {
        Ok((
            msg::peek(write_only.id, 0, max),
            msg::listing(write_only.id, max, 10),
            msg::peek(readable.id, 0, max),
            msg::queue(write_only.id),
        ))
    })
    .unwrap();
    assert_eq!(errno_of(refused), libc::EACCES);
    assert_eq!(errno_of(listed), libc::EACCES);
    assert_eq!(allowed.unwrap().bytes, b"open");
    assert_eq!(stat.unwrap().qnum, 1, "looking up needs no permission");
    // Root (CAP_IPC_OWNER) reads it.
    assert_eq!(msg::peek(write_only.id, 0, max).unwrap().bytes, b"secret");
}

#[test]
fn set_perm_changes_owner_mode_and_qbytes_as_the_kernel_allows() {
    if !root() {
        return;
    }
    let q = TestQueue::new(0o600);
    let mnb = msg::limits().unwrap().msgmnb;
    // Smaller, then larger again, up to msgmnb: anyone who may IPC_SET.
    msg::set_perm(q.id, 0o640, 0, 0, Some(mnb / 2)).unwrap();
    assert_eq!(msg::queue(q.id).unwrap().qbytes, mnb / 2);
    msg::set_perm(q.id, 0o640, 0, 0, Some(mnb)).unwrap();
    let now = msg::queue(q.id).unwrap();
    assert_eq!((now.mode, now.qbytes), (0o640, mnb));
    // Above msgmnb only with CAP_SYS_RESOURCE (which some sandboxes take even from root).
    let above = msg::set_perm(q.id, 0o640, 0, 0, Some(mnb * 2));
    if Caller::new(0, 0, std::process::id()).has_cap(CAP_SYS_RESOURCE) {
        above.unwrap();
        assert_eq!(msg::queue(q.id).unwrap().qbytes, mnb * 2);
    } else {
        assert_eq!(errno_of(above), libc::EPERM);
        assert_eq!(msg::queue(q.id).unwrap().qbytes, mnb, "unchanged");
    }
    let qbytes = msg::queue(q.id).unwrap().qbytes;
    // Without qbytes, qbytes stays.
    msg::set_perm(q.id, 0o600, 54321, 54321, None).unwrap();
    let now = msg::queue(q.id).unwrap();
    assert_eq!(
        (now.mode, now.uid, now.gid, now.qbytes),
        (0o600, 54321, 54321, qbytes)
    );
    // The owner, without capabilities: up to msgmnb only.
    let owner = Caller::new(54321, 54321, 0);
    let (above, within) = as_caller(&owner, || {
        Ok((
            msg::set_perm(q.id, 0o600, 54321, 54321, Some(mnb + 1)),
            msg::set_perm(q.id, 0o600, 54321, 54321, Some(mnb / 2)),
        ))
    })
    .unwrap();
    assert_eq!(errno_of(above), libc::EPERM);
    within.unwrap();
    assert_eq!(msg::queue(q.id).unwrap().qbytes, mnb / 2);
    // Someone else may not change it, nor remove it.
    let other = Caller::new(54322, 54322, 0);
    let (set, rm) = as_caller(&other, || {
        Ok((
            msg::set_perm(q.id, 0o777, 54322, 54322, None),
            msg::remove(q.id),
        ))
    })
    .unwrap();
    assert_eq!((errno_of(set), errno_of(rm)), (libc::EPERM, libc::EPERM));
    // The owner may remove it.
    as_caller(&owner, || msg::remove(q.id)).unwrap();
    assert_eq!(errno_of(msg::queue(q.id)), libc::ENOENT);
}

/// Polls `blocked_on` until `found` holds, for up to 10 s.
fn wait_for_waiters(id: i32, found: impl Fn(&[msg::Waiter]) -> bool) -> Vec<msg::Waiter> {
    let start = Instant::now();
    loop {
        let waiters = msg::blocked_on(id).unwrap();
        if found(&waiters) || start.elapsed() > Duration::from_secs(10) {
            return waiters;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn blocked_senders_and_receivers_are_found() {
    let q = TestQueue::new(0o600);
    let id = q.id;
    msg::set_perm(id, 0o600, 0, 0, Some(10)).unwrap();
    let (tids, tid) = std::sync::mpsc::channel();
    let receiving = std::thread::spawn(move || {
        tids.send(unsafe { libc::gettid() } as u32).unwrap();
        let mut buf = [0i64; 4];
        unsafe { libc::msgrcv(id, buf.as_mut_ptr() as *mut libc::c_void, 16, 42, 0) }
    });
    let tid = tid.recv().unwrap();
    let waiters = wait_for_waiters(id, |w| w.iter().any(|w| !w.sending));
    let r = waiters
        .iter()
        .find(|w| !w.sending)
        .expect("the blocked receiver");
    assert_eq!((r.pid, r.tid), (std::process::id(), tid));
    assert_eq!((r.mtype, r.size), (Some(42), 16));

    // Fill the queue (10 bytes), then a sender blocks.
    q.send(1, b"0123456789");
    let sending = std::thread::spawn(move || send(id, 2, b"abcde"));
    let waiters = wait_for_waiters(id, |w| w.iter().any(|w| w.sending));
    let s = waiters
        .iter()
        .find(|w| w.sending)
        .expect("the blocked sender");
    assert_eq!((s.pid, s.mtype, s.size), (std::process::id(), None, 5));
    assert!(!s.comm.is_empty());

    // Another queue has no waiters.
    let other = TestQueue::new(0o600);
    assert!(msg::blocked_on(other.id).unwrap().is_empty());

    // Removal wakes both (EIDRM).
    drop(q);
    assert!(sending.join().unwrap().is_err());
    assert_eq!(receiving.join().unwrap(), -1);
}

/// Prints what listing 1,000 and 4,000 messages costs (`cargo test --test msg_kernel
/// listing_cost -- --nocapture`); the doc comment of `msg::listing` quotes it.
#[test]
fn listing_cost() {
    if !copy_works() {
        return;
    }
    let max = msgmax();
    let mut times = Vec::new();
    for n in [1000usize, 4000] {
        let q = TestQueue::new(0o600);
        msg::set_perm(q.id, 0o600, 0, 0, Some(4 * n as u64)).ok();
        for i in 0..n {
            q.send(1 + (i % 5) as i64, b"ab");
        }
        let start = Instant::now();
        let listed = msg::listing(q.id, max, n + 10).unwrap();
        let took = start.elapsed();
        assert_eq!(listed.len(), n);
        assert!(listed.iter().all(|&(_, size)| size == 2));
        println!("listing {n} messages took {took:?}");
        times.push(took);
    }
    // O(n²): 4× the messages cost about 16× the time; far above that is a regression.
    println!(
        "ratio t(4000)/t(1000) = {:.1}",
        times[1].as_secs_f64() / times[0].as_secs_f64()
    );
}

/// A copy asks the kernel for a buffer of 8 KiB first and a larger one only for a longer
/// message, up to the bound it is given: never a buffer of the namespace's msgmax, which the
/// owner of a namespace may set to 2 GiB (and the kernel allocates the whole buffer of each
/// copy). In a private IPC namespace whose msgmax is 2 GiB: a message of 20,000 bytes is read
/// whole with a bound of 1 MiB, is E2BIG with a bound of 16 KiB, and ends a listing there.
#[test]
fn copies_grow_to_the_message_and_never_past_their_bound() {
    if !copy_works() {
        return;
    }
    std::thread::spawn(|| {
        // SAFETY: plain system call, affecting this thread only.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWIPC) },
            0,
            "unshare(CLONE_NEWIPC): {}",
            io::Error::last_os_error()
        );
        std::fs::write("/proc/sys/kernel/msgmax", "2147483647").expect("raise msgmax");
        std::fs::write("/proc/sys/kernel/msgmnb", "65536").expect("raise msgmnb");
        let q = TestQueue::new(0o600);
        q.send(3, b"short");
        let long: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        q.send(4, &long);
        q.send(5, b"after");
        assert_eq!(msg::peek(q.id, 1, 1 << 20).unwrap().bytes, long);
        assert_eq!(errno_of(msg::peek(q.id, 1, 16 << 10)), libc::E2BIG);
        assert_eq!(msg::peek(q.id, 0, 16 << 10).unwrap().bytes, b"short");
        assert_eq!(
            msg::listing(q.id, 16 << 10, 1024).unwrap(),
            [(3, 5)],
            "a listing ends at a message longer than its bound"
        );
        assert_eq!(
            msg::listing(q.id, 1 << 20, 1024).unwrap(),
            [(3, 5), (4, 20_000), (5, 5)]
        );
    })
    .join()
    .expect("the test's thread");
}
