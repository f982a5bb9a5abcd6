//! Named network namespaces, created the way iproute2 does (a bind mount of the
//! namespace under /run/netns), so `ip netns`, `ip -n` and `bpftool` see them too.
//!
//! `setns` changes only the calling thread, so nothing here ever calls it on a tokio
//! worker: work inside a namespace runs on a short-lived OS thread, and child processes
//! enter the namespace in `pre_exec`.

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Makes /run/netns a shared mount point, as iproute2 does, so namespace mounts propagate
/// into mount namespaces created later (e.g. by `ip netns exec`).
fn prepare_dir() -> Result<()> {
    std::fs::create_dir_all(NETNS_DIR).context("creating /run/netns")?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    if mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>).is_err() {
        mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("bind-mounting /run/netns onto itself")?;
        mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>)
            .context("making /run/netns shared")?;
    }
    Ok(())
}

/// Creates a named network namespace. Fails if the name is taken.
pub fn create(name: &str) -> Result<()> {
    prepare_dir()?;
    let p = path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .with_context(|| {
            format!(
                "creating {} (does the namespace already exist?)",
                p.display()
            )
        })?;
    let p2 = p.clone();
    let res = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p2,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting the new namespace on {}", p2.display()))?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("namespace creation thread panicked"))?;
    if res.is_err() {
        let _ = std::fs::remove_file(&p);
    }
    res.with_context(|| format!("creating network namespace {name}"))
}

/// Removes a named namespace (unmount + unlink). The kernel frees it, and the
/// interfaces in it, once no process holds it any more. Absent is fine.
pub fn delete(name: &str) -> Result<()> {
    let p = path(name);
    if !p.exists() {
        return Ok(());
    }
    match umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmounting {}", p.display())),
    }
    std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))
}

/// Names of the namespaces in /run/netns that start with `prefix`, sorted.
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

pub fn open(name: &str) -> Result<File> {
    File::open(path(name)).with_context(|| format!("opening network namespace {name}"))
}

/// Runs `f` on a fresh OS thread that has entered namespace `name`, and returns its
/// result. Sockets `f` creates stay bound to that namespace after the thread ends.
pub fn run_in<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let fd = open(name)?;
    let ns = name.to_string();
    std::thread::spawn(move || -> Result<T> {
        setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace {ns}"))?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("thread in namespace {name} panicked"))?
}

/// Prepares `cmd` to start inside namespace `name` (setns in the child before exec).
pub fn command_in(name: &str, cmd: &mut Command) -> Result<()> {
    let fd = open(name)?;
    // SAFETY: pre_exec runs in the forked child before exec; setns is async-signal-safe
    // (a plain syscall) and `fd` is owned by the closure.
    unsafe {
        cmd.pre_exec(move || {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    Ok(())
}

/// Opens an rtnetlink connection whose socket lives in namespace `name`; the connection
/// task runs on the current tokio runtime.
pub async fn netlink(name: &str) -> Result<rtnetlink::Handle> {
    let rt = tokio::runtime::Handle::current();
    let (conn, handle) = run_in(name, move || {
        let _guard = rt.enter();
        let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink socket")?;
        Ok((conn, handle))
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Writes a sysctl of namespace `name` (e.g. "net/bridge/bridge-nf-call-iptables").
/// /proc/sys/net follows the network namespace of the thread that opens it.
pub fn sysctl(name: &str, key: &str, value: &str) -> Result<()> {
    let key = key.to_string();
    let value = value.to_string();
    run_in(name, move || {
        let p = Path::new("/proc/sys").join(&key);
        std::fs::write(&p, &value).with_context(|| format!("writing {value} to {}", p.display()))
    })
}

/// Refuses to run without the privileges namespaces need.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("lbctl needs root (network namespaces, bridges, BPF): run it with sudo");
    }
    Ok(())
}
