//! Debian's keepalived as a VRRP peer in a test's namespace: a config written into the
//! test's directory, the daemon in the foreground with its log in a file, stopped by PID
//! (SIGTERM first: it resigns with priority 0) when the test ends, whatever happened.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether keepalived is installed (`keepalived --version` runs).
pub fn installed() -> bool {
    Command::new("keepalived").arg("--version").output().is_ok()
}

/// One VRRP instance as keepalived writes it: `interface`, `vrid`, `priority`,
/// `advert` (keepalived's advert_int, seconds), VRRP `version`, the `vip`, and `extra`
/// lines inside the vrrp_instance block.
pub fn conf(
    interface: &str,
    vrid: u8,
    priority: u8,
    advert: &str,
    version: u8,
    vip: &str,
    extra: &str,
) -> String {
    format!(
        "global_defs {{\n  router_id lbt\n  max_auto_priority -1\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface {interface}\n  \
         virtual_router_id {vrid}\n  priority {priority}\n  advert_int {advert}\n  \
         version {version}\n  virtual_ipaddress {{\n    {vip}\n  }}\n{extra}\n}}\n"
    )
}

/// A running keepalived; stopped on drop.
pub struct Keepalived {
    child: Option<Child>,
    /// Where keepalived writes the PID of its VRRP child.
    vrrp_pid: PathBuf,
    log: PathBuf,
}

impl Keepalived {
    /// Starts keepalived in namespace `ns` with config text `conf`, its files in `dir`.
    pub fn start(ns: &str, dir: &Path, conf: &str) -> Keepalived {
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, conf).expect("writing keepalived.conf");
        let log = dir.join("keepalived.log");
        let out = File::create(&log).expect("keepalived.log");
        let vrrp_pid = dir.join("vrrp.pid");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-G",
                "-P",
            ])
            .arg("-f")
            .arg(&path)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(&vrrp_pid)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting keepalived");
        Keepalived {
            child: Some(child),
            vrrp_pid,
            log,
        }
    }

    /// SIGTERM (graceful: keepalived sends priority 0 and removes its VIP), then wait up to
    /// 5 s, then SIGKILL; its VRRP child too if it outlived the parent. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::SIGTERM,
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        if let Some(pid) = std::fs::read_to_string(&self.vrrp_pid)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "keepalived" {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 25 lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let l = self.log();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop();
    }
}
