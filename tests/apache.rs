//! Apache + PHP backends: the default scenario with `web = "apache"` on every server. Each
//! server namespace runs its own Apache (prefork + mod_php) from a generated config under
//! the lab's run directory; the page is the lab text's index.php. Needs root and Debian's
//! apache2 + libapache2-mod-php (scripts/bootstrap.sh installs them).

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SERVERS: [(&str, &str); 3] = [
    ("serv1", "10.0.0.1"),
    ("serv2", "10.0.0.2"),
    ("serv3", "10.0.0.3"),
];

/// configs/default.toml with `web = "apache"` added to every server node, written to
/// `dir`; returns its path.
fn apache_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo_file("configs/default.toml")).unwrap();
    let edited = text.replace(
        "role = \"server\"\n",
        "role = \"server\"\nweb = \"apache\"\n",
    );
    assert_eq!(
        edited.matches("web = \"apache\"").count(),
        SERVERS.len(),
        "configs/default.toml no longer has three `role = \"server\"` lines"
    );
    let p = dir.join("apache.toml");
    std::fs::write(&p, edited).unwrap();
    p
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `curl` from a node; retried a few times (first-packet ARP, a server still forking).
fn curl(lab: &Lab, from: &str, args: &[&str]) -> String {
    let mut cmd = vec!["curl", "-s", "-m", "3"];
    cmd.extend_from_slice(args);
    let mut last = None;
    for _ in 0..5 {
        let o = lab.exec(from, &cmd);
        if o.status.success() {
            return stdout(&o);
        }
        last = Some(o);
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "curl {args:?} from {from} failed:\n{}",
        text(&last.unwrap())
    );
}

/// (node, pid) of the lab's recorded Apache daemons.
fn recorded_apache(lab: &str) -> Vec<(String, u32)> {
    let dir = Path::new("/run/lbctl").join(lab).join("pids");
    let mut v: Vec<(String, u32)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let node = name.strip_suffix(".apache.pid")?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            let pid = text.split_whitespace().next()?.parse().ok()?;
            Some((node, pid))
        })
        .collect();
    v.sort();
    v
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Live (not zombie) processes whose command line mentions this lab's Apache instances.
fn apache_processes(lab: &str) -> Vec<(u32, String)> {
    let needle = format!("/run/lbctl/{lab}/apache/");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .map(|pid| (pid, cmdline(pid)))
        .filter(|(_, c)| c.contains(&needle))
        .collect()
}

/// Whether `pid` exists and is not a zombie waiting for its reaper.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[test]
fn apache_php_backends() {
    require_root();
    assert!(
        Path::new("/usr/sbin/apache2").exists(),
        "apache2 is not installed: run scripts/bootstrap.sh"
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = apache_config(tmp.path());
    let lab = Lab::up(Some(cfg.to_str().unwrap()));

    // One recorded Apache per server, the parent (-DFOREGROUND) running in its node's
    // namespace with the instance's own config.
    let rec = recorded_apache(&lab.name);
    let names: Vec<&str> = rec.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["serv1", "serv2", "serv3"], "recorded: {rec:?}");
    for (node, pid) in &rec {
        assert!(running(*pid), "{node}'s Apache ({pid}) is not running");
        let conf = format!("/run/lbctl/{}/apache/{node}/apache2.conf", lab.name);
        let c = cmdline(*pid);
        assert!(
            c.contains("apache2") && c.contains(&conf) && c.contains("-DFOREGROUND"),
            "{node}: {c}"
        );
        let ns = std::fs::metadata(format!("/run/netns/lbctl-{}-{node}", lab.name))
            .unwrap()
            .ino();
        let proc_ns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .unwrap()
            .ino();
        assert_eq!(ns, proc_ns, "{node}'s Apache is not in its namespace");
        let pidfile = format!("/run/lbctl/{}/apache/{node}/apache2.pid", lab.name);
        let written: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            written, *pid,
            "Apache's PidFile differs from the recorded PID"
        );
    }

    // The lab text's page, rendered by PHP: server name and the balancer's internal
    // address as the client; serv3 is on the other host, through the VXLAN.
    for (node, addr) in SERVERS {
        let head_and_body = curl(&lab, "bal1", &["-i", &format!("http://{addr}/")]);
        assert!(
            head_and_body.contains(&format!("Esto es el servidor {node}")),
            "{node}: {head_and_body}"
        );
        assert!(
            head_and_body.contains("direccion: 10.0.0.250"),
            "{node}: {head_and_body}"
        );
        assert!(
            head_and_body.contains("Server: Apache"),
            "{node} is not served by Apache: {head_and_body}"
        );
        assert!(
            !head_and_body.contains("<?php"),
            "{node}: PHP did not run: {head_and_body}"
        );
        let code = curl(
            &lab,
            "bal1",
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{addr}/health"),
            ],
        );
        assert_eq!(code, "200", "{node}: /health");
        // From the other balancer too (its own client address).
        let page = curl(&lab, "bal2", &[&format!("http://{addr}/")]);
        assert!(page.contains("direccion: 10.0.0.251"), "{node}: {page}");
    }
    // Unknown paths are Apache's 404, not the page.
    let code = curl(
        &lab,
        "bal1",
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.0.0.1/nope",
        ],
    );
    assert_eq!(code, "404");
    // Requests were logged in the instance's own access log.
    let log = std::fs::read_to_string(format!("/run/lbctl/{}/apache/serv1/access.log", lab.name))
        .unwrap();
    assert!(
        log.contains("10.0.0.250") && log.contains("GET /health"),
        "{log}"
    );

    let procs = apache_processes(&lab.name);
    assert!(
        procs.len() > rec.len(),
        "expected prefork children besides the parents: {procs:?}"
    );

    // `down` stops every Apache: the recorded parents and, with them, their children.
    lab.run(&["down"]);
    for (node, pid) in &rec {
        assert!(
            !running(*pid),
            "{node}'s Apache ({pid}) survived down: {}",
            cmdline(*pid)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<(u32, String)> = apache_processes(&lab.name)
            .into_iter()
            .filter(|(p, _)| running(*p))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Apache processes left after down: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(namespaces_of(&lab.name).is_empty());
}
