//! Which container a process belongs to, from its cgroup (`/proc/PID/cgroup`): the runtime,
//! the container's id (or name), and the pod's uid under Kubernetes. For `ns/` (issue 23),
//! not yet used by the mount.
//!
//! Every runtime puts a container's processes in a cgroup named after it, and the names are
//! stable: docker `docker-<ID>.scope` (systemd driver) or `/docker/<ID>` (cgroupfs driver);
//! containerd under the kubelet `cri-containerd-<ID>.scope` (systemd) or
//! `/kubepods/<class>/pod<UID>/<ID>` (cgroupfs); cri-o `crio-<ID>.scope`; podman
//! `libpod-<ID>.scope` (its `libpod-conmon-<ID>.scope` is the monitor, outside the container);
//! systemd-nspawn `machine.slice/systemd-nspawn@NAME.service` or `machine.slice/machine-NAME.scope`;
//! LXC and LXD `lxc.payload.NAME` (`/lxc/NAME` before LXC 4). `ID` is 64 lowercase hex
//! digits. A pod's uid is in a `pod<UID>` cgroup under `kubepods` (the systemd driver writes
//! it `kubepods-burstable-pod<UID>.slice`, with `_` for the uid's `-`).
//!
//! The innermost match wins (a container in a container: the kubelet in a `kind` node, docker
//! in an nspawn machine). Paths are as the reader's cgroup namespace shows them: the daemon's,
//! normally the host's. The cgroup v2 line (`0::/path`) is looked at first, then the v1 lines
//! (`N:controllers:/path`) in order.

use std::fmt;
use std::io::{self, Read};

/// The container runtimes recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    /// containerd, as the kubelet's CRI runtime.
    Containerd,
    /// cri-o.
    Crio,
    Podman,
    /// systemd-nspawn (and machines registered with systemd-machined).
    Nspawn,
    /// LXC and LXD.
    Lxc,
}

impl Runtime {
    /// Its name in labels and texts, as Kubernetes' `containerID` scheme writes it where it
    /// has one (`docker`, `containerd`, `cri-o`), else the tool's (`podman`, `nspawn`, `lxc`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Nspawn => "nspawn",
            Runtime::Lxc => "lxc",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One container, as its cgroup names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Container {
    pub runtime: Runtime,
    /// The container's full id (64 hex digits) or, for nspawn and LXC, its name.
    pub id: String,
    /// The uid of the Kubernetes pod it is in, with its `-` (as `kubectl get pod -o
    /// jsonpath={.metadata.uid}` shows it).
    pub pod_uid: Option<String>,
    /// The container's cgroup: the path up to the part that names the container, as
    /// cAdvisor's `id` label shows it (`/system.slice/docker-<ID>.scope`).
    pub cgroup: String,
}

impl Container {
    /// Its labels for Prometheus, always the same four names: `runtime`, `container_id` (the
    /// full id or name), `pod_uid` (empty outside a pod, which Prometheus takes as absent) and
    /// `id` (the cgroup, to join cAdvisor's series).
    pub fn label_pairs(&self) -> [(&'static str, &str); 4] {
        [
            ("runtime", self.runtime.name()),
            ("container_id", &self.id),
            ("pod_uid", self.pod_uid.as_deref().unwrap_or("")),
            ("id", &self.cgroup),
        ]
    }

    /// The id as `docker ps` shows it: the first 12 hex digits; a name whole.
    pub fn short_id(&self) -> &str {
        if is_hex_id(&self.id) {
            &self.id[..12]
        } else {
            &self.id
        }
    }
}

impl fmt::Display for Container {
    /// `RUNTIME:SHORT_ID` (`docker:3f2a9c0b1d4e`, `nspawn:web`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.runtime, self.short_id())
    }
}

/// The most of `/proc/PID/cgroup` read: a few lines, one per hierarchy, in practice.
const MAX_CGROUP_FILE: u64 = 64 * 1024;

/// The container process `pid` (as the daemon's `/proc` numbers it) belongs to, if any: None
/// for a process of the host. An error if it is gone.
pub fn container_of(pid: u32) -> io::Result<Option<Container>> {
    let mut bytes = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/cgroup"))?
        .take(MAX_CGROUP_FILE)
        .read_to_end(&mut bytes)?;
    Ok(container_of_cgroup(&String::from_utf8_lossy(&bytes)))
}

/// The container that the text of a `/proc/PID/cgroup` names, if any (see the module's
/// comment). Never panics, whatever the text.
pub fn container_of_cgroup(text: &str) -> Option<Container> {
    let lines = || {
        text.lines().filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let hierarchy = fields.next()?;
            let _controllers = fields.next()?;
            Some((hierarchy, fields.next()?))
        })
    };
    let v2 = lines().filter(|(h, _)| *h == "0");
    let v1 = lines().filter(|(h, _)| *h != "0");
    v2.chain(v1).find_map(|(_, path)| container_of_path(path))
}

/// The container a cgroup path names, the innermost one if several.
fn container_of_path(path: &str) -> Option<Container> {
    if !path.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = path.split('/').collect();
    (0..parts.len()).rev().find_map(|i| {
        let (runtime, id) = named_by(&parts[..i], parts[i])?;
        let above = &parts[..i];
        let in_kubepods = above.iter().any(|p| is_kubepods(p));
        let pod_uid = if in_kubepods {
            above.iter().rev().find_map(|p| pod_uid_of(p))
        } else {
            None
        };
        Some(Container {
            runtime,
            id,
            pod_uid,
            cgroup: parts[..=i].join("/"),
        })
    })
}

/// The container that cgroup `part` names, with the cgroups `above` it.
fn named_by(above: &[&str], part: &str) -> Option<(Runtime, String)> {
    let parent = above.last().copied().unwrap_or("");
    let scoped = |prefix: &str| {
        let rest = part.strip_prefix(prefix)?;
        let id = rest.strip_suffix(".scope").unwrap_or(rest);
        is_hex_id(id).then(|| id.to_string())
    };
    if let Some(id) = scoped("docker-") {
        return Some((Runtime::Docker, id));
    }
    if let Some(id) = scoped("cri-containerd-") {
        return Some((Runtime::Containerd, id));
    }
    if let Some(id) = scoped("crio-") {
        return Some((Runtime::Crio, id));
    }
    if let Some(id) = scoped("libpod-") {
        return Some((Runtime::Podman, id));
    }
    if is_hex_id(part) {
        if parent == "docker" {
            return Some((Runtime::Docker, part.to_string()));
        }
        // The kubelet's cgroupfs driver: /kubepods[/CLASS]/pod<UID>/<ID>, containerd's
        // (dockershim, which wrote the same, is gone since Kubernetes 1.24).
        if parent.starts_with("pod") && above.iter().any(|p| is_kubepods(p)) {
            return Some((Runtime::Containerd, part.to_string()));
        }
        return None;
    }
    if parent == "machine.slice" {
        let name = part
            .strip_prefix("systemd-nspawn@")
            .and_then(|r| r.strip_suffix(".service"))
            .or_else(|| {
                part.strip_prefix("machine-")
                    .and_then(|r| r.strip_suffix(".scope"))
            })
            .map(unescape_unit)?;
        // libvirt's virtual machines register as machine-qemu\x2dN\x2dNAME.scope: no
        // container, and no IPC namespace of their own.
        if name.is_empty() || name.starts_with("qemu-") {
            return None;
        }
        return Some((Runtime::Nspawn, name));
    }
    if let Some(name) = part.strip_prefix("lxc.payload.")
        && !name.is_empty()
    {
        return Some((Runtime::Lxc, name.to_string()));
    }
    if matches!(parent, "lxc" | "lxc.payload") && !part.is_empty() && above.len() == 2 {
        return Some((Runtime::Lxc, part.to_string()));
    }
    None
}

/// The pod uid that cgroup `part` names, with its `-`: `pod<UID>` (cgroupfs driver) or
/// `kubepods[-CLASS]-pod<UID_WITH_UNDERSCORES>.slice` (systemd driver).
fn pod_uid_of(part: &str) -> Option<String> {
    let uid = match part.strip_suffix(".slice") {
        Some(slice) => slice.rsplit_once("-pod")?.1.replace('_', "-"),
        None => part.strip_prefix("pod")?.to_string(),
    };
    let ok = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    ok.then_some(uid)
}

/// Whether cgroup `part` is the kubelet's, of its pods: `kubepods`, `kubepods.slice`,
/// `kubepods-burstable.slice`, and with a prefix where the kubelet is told one
/// (`kubelet-kubepods.slice` in a `kind` node).
fn is_kubepods(part: &str) -> bool {
    part.contains("kubepods")
}

/// Whether `s` is a container id: 64 lowercase hex digits.
fn is_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A name out of a systemd unit name: `\xNN` escapes undone (`my\x2dbox` is `my-box`).
fn unescape_unit(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(hex) = b.get(i + 2..i + 4)
            && hex.iter().all(u8::is_ascii_hexdigit)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "3f2a9c0b1d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    const POD: &str = "1234abcd-5678-90ef-abcd-ef0123456789";

    fn found(text: &str) -> Container {
        container_of_cgroup(text).unwrap_or_else(|| panic!("no container in {text:?}"))
    }

    fn is(text: &str, runtime: Runtime, id: &str, pod_uid: Option<&str>, cgroup: &str) {
        let c = found(text);
        assert_eq!(
            (
                c.runtime,
                c.id.as_str(),
                c.pod_uid.as_deref(),
                c.cgroup.as_str()
            ),
            (runtime, id, pod_uid, cgroup),
            "{text:?}"
        );
    }

    #[test]
    fn docker_with_systemd_and_with_cgroupfs() {
        let scope = format!("/system.slice/docker-{ID}.scope");
        is(&format!("0::{scope}\n"), Runtime::Docker, ID, None, &scope);
        // cgroup v1, cgroupfs driver.
        let v1 = format!(
            "12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n"
        );
        let d = format!("/docker/{ID}");
        is(&v1, Runtime::Docker, ID, None, &d);
        // docker.service itself, and dockerd's containerd shim, are the host's.
        assert_eq!(
            container_of_cgroup("0::/system.slice/docker.service\n"),
            None
        );
        assert_eq!(
            container_of_cgroup("0::/system.slice/containerd.service\n"),
            None
        );
    }

    #[test]
    fn containerd_under_kubernetes_with_systemd_slices() {
        let pod_slice = POD.replace('-', "_");
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_slice}.slice/cri-containerd-{ID}.scope"
        );
        is(
            &format!("0::{path}\n"),
            Runtime::Containerd,
            ID,
            Some(POD),
            &path,
        );
        // A guaranteed pod's slice has no class.
        let path =
            format!("/kubepods.slice/kubepods-pod{pod_slice}.slice/cri-containerd-{ID}.scope");
        is(
            &format!("0::{path}"),
            Runtime::Containerd,
            ID,
            Some(POD),
            &path,
        );
        // The pod's own slice, above its containers, is no container.
        let slice = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_slice}.slice\n"
        );
        assert_eq!(container_of_cgroup(&slice), None);
    }

    #[test]
    fn containerd_under_kubernetes_with_cgroupfs() {
        let path = format!("/kubepods/burstable/pod{POD}/{ID}");
        is(
            &format!("0::{path}\n"),
            Runtime::Containerd,
            ID,
            Some(POD),
            &path,
        );
        let v1 =
            format!("4:memory:/kubepods/pod{POD}/{ID}\n3:cpu,cpuacct:/kubepods/pod{POD}/{ID}\n");
        is(
            &v1,
            Runtime::Containerd,
            ID,
            Some(POD),
            &format!("/kubepods/pod{POD}/{ID}"),
        );
        // A bare id elsewhere names nothing.
        assert_eq!(container_of_cgroup(&format!("0::/system.slice/{ID}")), None);
    }

    #[test]
    fn crio_with_and_without_kubernetes() {
        let pod_slice = POD.replace('-', "_");
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_slice}.slice/crio-{ID}.scope"
        );
        // cri-o with a systemd-managed container has a `container` cgroup below the scope.
        is(
            &format!("0::{path}/container\n"),
            Runtime::Crio,
            ID,
            Some(POD),
            &path,
        );
        let path = format!("/machine.slice/crio-{ID}.scope");
        is(&format!("0::{path}"), Runtime::Crio, ID, None, &path);
        // conmon, cri-o's monitor, is outside the container.
        assert_eq!(
            container_of_cgroup(&format!(
                "0::/kubepods.slice/kubepods-pod{pod_slice}.slice/crio-conmon-{ID}.scope"
            )),
            None
        );
    }

    #[test]
    fn podman_but_not_its_conmon() {
        let path = format!("/machine.slice/libpod-{ID}.scope");
        is(&format!("0::{path}\n"), Runtime::Podman, ID, None, &path);
        // Rootless, in the user's slice, with systemd inside the container.
        let path =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        is(
            &format!("0::{path}/container/init.scope\n"),
            Runtime::Podman,
            ID,
            None,
            &path,
        );
        assert_eq!(
            container_of_cgroup(&format!("0::/machine.slice/libpod-conmon-{ID}.scope\n")),
            None
        );
        // A podman pod's slice is not a container; a container in it is.
        let pod = format!("/machine.slice/machine-libpod_pod_{ID}.slice");
        assert_eq!(container_of_cgroup(&format!("0::{pod}")), None);
        is(
            &format!("0::{pod}/libpod-{ID}.scope"),
            Runtime::Podman,
            ID,
            None,
            &format!("{pod}/libpod-{ID}.scope"),
        );
    }

    #[test]
    fn nspawn_as_a_service_and_as_a_machine_scope() {
        is(
            "0::/machine.slice/systemd-nspawn@web.service/payload/system.slice/nginx.service\n",
            Runtime::Nspawn,
            "web",
            None,
            "/machine.slice/systemd-nspawn@web.service",
        );
        is(
            "0::/machine.slice/machine-my\\x2dbox.scope/payload\n",
            Runtime::Nspawn,
            "my-box",
            None,
            "/machine.slice/machine-my\\x2dbox.scope",
        );
        // libvirt's virtual machines are no containers.
        assert_eq!(
            container_of_cgroup(
                "0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator"
            ),
            None
        );
        // Elsewhere than machine.slice, such a name is nothing.
        assert_eq!(
            container_of_cgroup("0::/system.slice/systemd-nspawn@web.service"),
            None
        );
    }

    #[test]
    fn lxc_payload_and_the_old_form() {
        is(
            "0::/lxc.payload.c1/system.slice/cron.service\n",
            Runtime::Lxc,
            "c1",
            None,
            "/lxc.payload.c1",
        );
        is(
            "5:memory:/lxc/old-one\n",
            Runtime::Lxc,
            "old-one",
            None,
            "/lxc/old-one",
        );
        // LXC's monitor process is the host's.
        assert_eq!(container_of_cgroup("0::/lxc.monitor.c1\n"), None);
    }

    #[test]
    fn the_innermost_container_wins() {
        // The kubelet of a kind node, itself a docker container.
        let pod_slice = POD.replace('-', "_");
        let other = "a".repeat(64);
        let path = format!(
            "/system.slice/docker-{other}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{pod_slice}.slice/cri-containerd-{ID}.scope"
        );
        is(
            &format!("0::{path}"),
            Runtime::Containerd,
            ID,
            Some(POD),
            &path,
        );
    }

    #[test]
    fn a_host_process_is_in_no_container() {
        for text in [
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/init.scope\n",
            "0::/\n",
            "0::/system.slice/sshd.service\n",
            "12:memory:/user.slice\n1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n0::/user.slice/user-1000.slice/session-3.scope\n",
            "",
            "garbage",
            "0:",
            "0::",
            "::::",
            "0::docker/not-absolute",
            &format!("0::/docker/{}", &ID[..63]),
            &format!("0::/docker/{}", ID.to_uppercase()),
            &format!("0::/system.slice/docker-{ID}x.scope"),
        ] {
            assert_eq!(container_of_cgroup(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_v2_line_is_looked_at_before_the_v1_lines() {
        let other = "b".repeat(64);
        let text = format!("3:memory:/docker/{other}\n0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(found(&text).id, ID);
    }

    #[test]
    fn shown_as_docker_ps_shows_it_and_labelled_for_prometheus() {
        let pod_slice = POD.replace('-', "_");
        let c = found(&format!(
            "0::/kubepods.slice/kubepods-pod{pod_slice}.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(c.to_string(), "containerd:3f2a9c0b1d4e");
        let labels = c.label_pairs();
        assert_eq!(labels[0], ("runtime", "containerd"));
        assert_eq!(labels[1], ("container_id", ID));
        assert_eq!(labels[2], ("pod_uid", POD));
        assert_eq!(labels[3].0, "id");
        assert!(labels[3].1.ends_with(".scope"));
        let n = found("0::/machine.slice/systemd-nspawn@web.service");
        assert_eq!(n.to_string(), "nspawn:web");
        assert_eq!(n.label_pairs()[2], ("pod_uid", ""));
        assert_eq!(found("0::/lxc.payload.c1").to_string(), "lxc:c1");
        let crio = found(&format!("0::/machine.slice/crio-{ID}.scope"));
        assert_eq!(crio.to_string(), "cri-o:3f2a9c0b1d4e");
    }

    #[test]
    fn this_process_is_read_without_error() {
        // Whatever runs the tests (a container in CI, perhaps): an answer, not an error.
        container_of(std::process::id()).expect("read /proc/PID/cgroup of this process");
        assert!(container_of(0).is_err());
    }

    /// Pieces of real paths, to make cgroup lines near the real ones.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("docker".to_string()),
            Just("kubepods".to_string()),
            Just("kubepods.slice".to_string()),
            Just("machine.slice".to_string()),
            Just("lxc".to_string()),
            Just(format!("pod{POD}")),
            Just(format!("kubepods-pod{}.slice", POD.replace('-', "_"))),
            Just(ID.to_string()),
            Just(format!("docker-{ID}.scope")),
            Just(format!("libpod-{ID}")),
            Just("machine-\\x2".to_string()),
            Just("machine-\\xé.scope".to_string()),
            Just("systemd-nspawn@.service".to_string()),
            Just("lxc.payload.".to_string()),
            "[a-z0-9_.@\\\\-]{0,12}",
            "\\PC{0,8}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = container_of_cgroup(&text);
        }

        #[test]
        fn never_panics_on_lines_near_real_ones(
            hierarchy in "[0-9]{0,2}",
            controllers in "[a-z=,]{0,12}",
            parts in proptest::collection::vec(piece(), 0..8),
        ) {
            let text = format!("{hierarchy}:{controllers}:/{}\n", parts.join("/"));
            if let Some(c) = container_of_cgroup(&text) {
                prop_assert!(!c.id.is_empty());
                prop_assert!(text.contains(&c.cgroup));
                let _ = c.to_string();
            }
        }
    }
}
