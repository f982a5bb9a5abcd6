//! `lbctl verify` on real labs: the default scenario passes all four checkpoints with every
//! injected failure recovered; deliberately broken labs fail the right checkpoint with a
//! message naming the cause; a verify run that panics or is interrupted mid-failure leaves
//! the lab as it found it. Root only (CI runs as root); each lab is unique and torn down
//! by its guard.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `lbctl verify --json ARGS` on a lab; (exit code, report).
fn verify(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut cmd = Command::new(lbctl_bin());
    cmd.args(["verify", "--json", "--lab", &lab.name])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("running lbctl verify");
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify --json is not JSON ({e}):\n{}", text(&o)));
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), report)
}

fn checkpoint(r: &Value, n: u64) -> &Value {
    r["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == n)
        .unwrap_or_else(|| panic!("no checkpoint {n} in {r:#}"))
}

/// Every evidence line of the failed steps of a checkpoint, joined.
fn failures(c: &Value) -> String {
    c["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "fail")
        .map(|s| {
            format!(
                "{}: {}",
                s["name"].as_str().unwrap(),
                s["evidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lab is as `up` left it: the tree is theory's, the scenario's blocked ports, bal1
/// master, no tunnel cut left on the switches.
fn assert_at_rest(lab: &Lab) {
    let t = Instant::now();
    loop {
        let st = lab.status();
        let vrrp: Vec<(String, String)> = st["balancers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["node"].as_str().unwrap().to_string(),
                    b["vrrp"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let ok = mismatches(&st) == 0
            && blocked_ports(&st) == ["vswout1/to-swout1", "vswout2/to-swout1"]
            && vrrp
                == [
                    ("bal1".to_string(), "MASTER".to_string()),
                    ("bal2".to_string(), "BACKUP".to_string()),
                ];
        if ok {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "lab not back at rest: vrrp {vrrp:?}, blocked {:?}, {} mismatches",
            blocked_ports(&st),
            mismatches(&st)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_no_cut_left(lab, &["swout1", "swout2"]);
}

/// No switch keeps verify's tunnel-cut nftables table once verify is over.
fn assert_no_cut_left(lab: &Lab, switches: &[&str]) {
    for sw in switches {
        let o = lab.exec(sw, &["nft", "list", "tables"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("lbctl_verify_cut"),
            "tunnel cut left on {sw}"
        );
    }
}

#[test]
fn default_lab_passes_every_checkpoint() {
    passes_every_checkpoint(None, "kernel", "kernel");
}

/// The scenario with lbctl's RSTP on the external LAN's four bridges (configs/rstp.toml):
/// the same checkpoints, the same tree at rest, every `stpd` still running afterwards.
#[test]
fn rstp_lab_passes_every_checkpoint() {
    passes_every_checkpoint(Some("configs/rstp.toml"), "kernel", "rstp");
}

/// The same scenario with lbctl's BPF VTEP on both hosts instead of the kernel's vxlan.
#[test]
fn default_lab_with_the_ebpf_data_path_passes_every_checkpoint() {
    passes_every_checkpoint(Some("tests/configs/ebpf.toml"), "ebpf", "kernel");
}

/// `stp`: the lab's STP mode ("kernel" or "rstp"), checked before and after verify.
fn passes_every_checkpoint(config: Option<&str>, data_path: &str, stp: &str) {
    require_root();
    let lab = Lab::up(config);
    assert_stp_mode(&lab, stp);
    let t = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (svg, html) = (dir.path().join("v.svg"), dir.path().join("v.html"));
    let pictures = [
        "--svg",
        svg.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ];
    let (code, r) = verify(&lab, &pictures, &[]);
    eprintln!("verify took {:.0} s", t.elapsed().as_secs_f32());
    check_pictures(&r, &svg, &html);
    // The figures, for the README.
    for c in r["checkpoints"].as_array().unwrap() {
        for e in c["events"].as_array().unwrap() {
            eprintln!(
                "cp{} {:<34} {:<4} {:<6} outage {:>5} ms, failed {:>3}/{:<4} {}",
                c["number"],
                e["fault"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["client"].as_str().unwrap(),
                e["outage_ms"],
                e["failed"],
                e["requests"],
                if e["has_path"] == false {
                    "(no path)"
                } else if e["recovered"] == true {
                    ""
                } else {
                    "(window ended on a failure)"
                }
            );
        }
    }
    let failed: Vec<String> = r["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] != true)
        .map(failures)
        .collect();
    assert!(failed.is_empty(), "failed steps:\n{}", failed.join("\n"));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["schema"], 2);
    assert_eq!(r["passed"], true);
    assert_eq!(r["data_path"], data_path);
    assert_eq!(r["checkpoints"].as_array().unwrap().len(), 4);
    // Checkpoint 1: 5 links and 4 bridges, down and up, measured from user1 and user2.
    let ev = checkpoint(&r, 1)["events"].as_array().unwrap();
    assert_eq!(ev.len(), 9 * 2 * 2, "{ev:#?}");
    for e in ev {
        assert!(e["requests"].as_u64().unwrap() > 0, "{e}");
        // Whoever had a path got the service back (the steps check it: one second of
        // answers within 20 s); here the outage it saw is bounded accordingly. (An event's
        // window may still end on a late, isolated failure, so "recovered" is not
        // asserted per event.)
        if e["has_path"] == true {
            assert!(e["outage_ms"].as_u64().unwrap() <= 30_000, "{e}");
        }
        // Each user hangs off one switch only: it has no path while that switch is down.
        let no_path = e["action"] == "down"
            && ((e["client"] == "user1" && e["fault"] == "bridge swout1")
                || (e["client"] == "user2" && e["fault"] == "bridge swout2"));
        assert_eq!(e["has_path"] == false, no_path, "{e}");
    }
    // Checkpoint 2: vswout1 down costs user2 an outage (VRRP takes ~3 s) but it recovers.
    let ev = checkpoint(&r, 2)["events"].as_array().unwrap();
    let down = ev
        .iter()
        .find(|e| e["client"] == "user2" && e["action"] == "down")
        .unwrap();
    assert!(down["failed"].as_u64().unwrap() > 0, "{down}");
    assert!(down["outage_ms"].as_u64().unwrap() >= 1000, "{down}");
    assert_eq!(down["recovered"], true);
    assert!(r["undone"].as_array().unwrap().is_empty(), "{r:#}");
    assert_at_rest(&lab);
    assert_stp_mode(&lab, stp);
}

/// In "rstp" mode each of the external LAN's four bridges has its running `stpd`; in
/// "kernel" mode none has one.
fn assert_stp_mode(lab: &Lab, stp: &str) {
    let st = lab.status();
    let running: Vec<&str> = st["rstp"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|b| b["daemon_running"] == true)
        .map(|b| b["bridge"].as_str().unwrap())
        .collect();
    let want: &[&str] = if stp == "rstp" {
        &["swout1", "swout2", "vswout1", "vswout2"]
    } else {
        &[]
    };
    assert_eq!(running, want, "bridges with a running stpd");
}

/// Every step's name of a checkpoint.
fn step_names(c: &Value) -> Vec<String> {
    c["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// `lbctl verify --max-events N` on `lab`: every checkpoint passed and the exit status is
/// 0 (the failed steps are printed otherwise); the JSON report.
fn verify_passes(lab: &Lab, max_events: &str, what: &str) -> Value {
    let t = Instant::now();
    let (code, r) = verify(lab, &["--max-events", max_events], &[]);
    eprintln!("verify ({what}) took {:.0} s", t.elapsed().as_secs_f32());
    let failed: Vec<String> = r["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] != true)
        .map(failures)
        .collect();
    assert!(failed.is_empty(), "failed steps:\n{}", failed.join("\n"));
    assert_eq!(code, 0, "{r:#}");
    r
}

/// A lab with none of the scenario's shape: four hosts (BPF VTEP), four switches, four
/// balancers, six servers, four users (tests/configs/big.toml). Every checkpoint is
/// derived from its config; `--max-events 2` keeps checkpoint 1 to the two lowest-priority
/// bridges (the root and the next) so the run stays around two minutes.
#[test]
fn four_host_lab_passes_every_checkpoint_derived_from_its_config() {
    require_root();
    let lab = Lab::up(Some("tests/configs/big.toml"));
    let r = verify_passes(&lab, "2", "4 hosts, --max-events 2");
    assert_eq!(r["data_path"], "ebpf");
    assert_eq!(r["checkpoints"].as_array().unwrap().len(), 4);
    // Checkpoint 1: the two bridges chosen, the other 18 events named as skipped, and no
    // scenario tree (the lab is not the scenario's).
    let c1 = checkpoint(&r, 1);
    let plan = c1["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "failure events derived from the config: 2 of 20")
        .unwrap_or_else(|| panic!("no plan step: {:?}", step_names(c1)));
    let ev = plan["evidence"].to_string();
    assert!(ev.contains("run: bridge swout1, bridge swout2"), "{ev}");
    assert!(
        ev.contains("skipped (--max-events): link swout1 - swout2"),
        "{ev}"
    );
    assert!(ev.contains("scenario's tree not checked"), "{ev}");
    let events = c1["events"].as_array().unwrap();
    assert_eq!(events.len(), 2 * 2 * 4, "2 faults, down and up, 4 users");
    // Checkpoint 2: bal2 (next in VRRP order) takes over from bal1.
    let c2 = step_names(checkpoint(&r, 2));
    assert!(
        c2.iter()
            .any(|s| s == "bridge vswout1 down: bal2 becomes MASTER and holds the VIP"),
        "{c2:?}"
    );
    // Checkpoint 3: every user through the VIP, every other balancer through its own
    // address, and each of the four hosts cut from the tunnel in turn.
    let c3 = step_names(checkpoint(&r, 3));
    for u in ["user1", "user2", "user3", "user4"] {
        assert!(
            c3.iter()
                .any(|s| s.starts_with(&format!("tunnel up: 12 requests from {u} to the VIP"))),
            "{c3:?}"
        );
    }
    for (b, a) in [
        ("bal2", "172.16.1.251"),
        ("bal3", "172.16.1.252"),
        ("bal4", "172.16.1.253"),
    ] {
        assert!(
            c3.iter()
                .any(|s| s.contains(&format!("to {a}:8000 alternate"))
                    && s.contains(&format!("through {b}"))),
            "{c3:?}"
        );
    }
    for h in ["vm1", "vm2", "vm3", "vm4"] {
        let cut = format!(
            "{h} cut from the tunnel: each balancer sees only the servers on its side of the cut"
        );
        assert!(c3.contains(&cut), "{c3:?}");
    }
    assert!(c3.iter().any(|s| s == "vm4 cut from the tunnel: 8 requests from user1 to the VIP alternate over serv1, serv2, serv3, serv4 through bal1 (10.0.0.250)"), "{c3:?}");
    // Checkpoint 4: the counters of every other host.
    let c4 = step_names(checkpoint(&r, 4));
    for (s, h) in [("serv3", "vm2"), ("serv4", "vm3"), ("serv5", "vm4")] {
        assert!(
            c4.contains(&format!("VXLAN counters show the traffic to {s} on {h}")),
            "{c4:?}"
        );
    }
    assert!(r["undone"].as_array().unwrap().is_empty(), "{r:#}");
    assert_no_cut_left(&lab, &["swout1", "swout2", "swout3", "swout4"]);
}

/// `lbctl gen --hosts 4` as generated (kernel vxlan devices flooding to three remotes each,
/// two switches in a ring, two balancers, eight servers, two users): every checkpoint passes,
/// derived from the generated config. `--max-events 1` keeps checkpoint 1 to the root bridge.
#[test]
fn generated_four_host_lab_passes_every_checkpoint() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen4.toml");
    let path = file.display().to_string();
    lbctl_ok(&["gen", "--hosts", "4", "-o", &path]);
    let lab = Lab::up(Some(&path));
    let r = verify_passes(&lab, "1", "generated 4 hosts, --max-events 1");
    assert_eq!(r["data_path"], "kernel");
    // Checkpoint 3: each of the four hosts cut from the tunnel in turn; checkpoint 4: the
    // counters of the three other hosts.
    let c3 = step_names(checkpoint(&r, 3));
    for h in ["vm1", "vm2", "vm3", "vm4"] {
        assert!(
            c3.iter()
                .any(|s| s.starts_with(&format!("{h} cut from the tunnel"))),
            "{c3:?}"
        );
    }
    let c4 = step_names(checkpoint(&r, 4));
    for h in ["vm2", "vm3", "vm4"] {
        assert!(
            c4.iter()
                .any(|s| s.starts_with("VXLAN counters show") && s.ends_with(&format!(" on {h}"))),
            "{c4:?}"
        );
    }
    assert!(r["undone"].as_array().unwrap().is_empty(), "{r:#}");
}

/// The run's `--svg` parses as XML with one row per event, its `--html` embeds it, and
/// `--from-json` on the saved report draws the same bytes (no lab needed).
fn check_pictures(r: &Value, svg: &std::path::Path, html: &std::path::Path) {
    let text = std::fs::read_to_string(svg).expect("verify --svg wrote the file");
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("SVG: {e}"));
    let rows = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("row"))
        .count();
    let events: usize = r["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(rows, events, "one row per event and client");
    let page = std::fs::read_to_string(html).expect("verify --html wrote the file");
    assert!(
        page.contains(text.trim_end()),
        "the page embeds the timeline"
    );
    let saved = svg.with_extension("json");
    std::fs::write(&saved, r.to_string()).unwrap();
    let again = svg.with_extension("again.svg");
    lbctl_ok(&[
        "verify",
        "--from-json",
        saved.to_str().unwrap(),
        "--svg",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
}

#[test]
fn wrong_priority_fails_checkpoint1_naming_the_bridge() {
    require_root();
    let lab = Lab::up(Some("tests/configs/wrong-priority.toml"));
    let (code, r) = verify(&lab, &["--only", "1"], &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["passed"], false);
    let c = checkpoint(&r, 1);
    assert_eq!(c["passed"], false);
    let steps = c["steps"].as_array().unwrap();
    // The kernel does what the config says...
    assert_eq!(steps[0]["status"], "pass", "{c:#}");
    // ...but the tree is not the scenario's, and the report says why.
    assert_eq!(steps[1]["status"], "fail", "{c:#}");
    let f = failures(c);
    assert!(f.contains("root: kernel swout1, scenario swout2"), "{f}");
    assert!(
        f.contains("cause: bridge swout1: priority 2048 in the lab's config, 8192 in the scenario"),
        "{f}"
    );
    // The ports that differ are named: swout1 is now root, so swout1/to-swout2 is no
    // longer its root port.
    assert!(f.contains("swout1/to-swout2: kernel"), "{f}");
}

fn down_on_bal1(lab: &Lab, server: &str) -> bool {
    lab.status()["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["node"] == "bal1")
        .flat_map(|b| b["backends"].as_array().unwrap().iter())
        .any(|be| be["name"] == server && be["up"] == false)
}

#[test]
fn stopped_server_fails_checkpoint3_naming_it() {
    require_root();
    let lab = Lab::up(None);
    let st = lab.status();
    let pid = st["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["node"] == "serv2")
        .expect("serv2's daemon in status")["pid"]
        .as_u64()
        .unwrap();
    // The PID the lab recorded for the server it started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    // A broken lab in its steady state: bal1's health checks have taken serv2 out.
    let t = Instant::now();
    while !down_on_bal1(&lab, "serv2") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "bal1 never marked serv2 down"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, r) = verify(&lab, &["--only", "3"], &[]);
    assert_eq!(code, 1, "{r:#}");
    let f = failures(checkpoint(&r, 3));
    assert!(f.contains("serv2 (10.0.0.2:80) DOWN"), "{f}");
    assert!(
        f.contains(&format!(
            "cause: serv2's serve daemon (pid {pid}) is not running"
        )),
        "{f}"
    );
    assert!(!f.contains("serv1 (") && !f.contains("serv3 ("), "{f}");
}

#[test]
fn missing_tunnel_fails_checkpoints_3_and_4_naming_the_vxlan() {
    require_root();
    let lab = Lab::up(None);
    let o = lab.exec("vm1", &["ip", "link", "del", "vxlan0"]);
    assert!(o.status.success(), "{}", text(&o));
    // A broken lab in its steady state: bal1's health checks have taken serv3 out.
    let t = Instant::now();
    while !down_on_bal1(&lab, "serv3") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "bal1 never marked serv3 down"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, r) = verify(&lab, &["--only", "3", "--only", "4"], &[]);
    assert_eq!(code, 1, "{r:#}");
    let f3 = failures(checkpoint(&r, 3));
    assert!(
        f3.contains(
            "serv3 is on vm2, bal1 on vm1: reached only through the VXLAN tunnel (device vxlan0)"
        ),
        "{f3}"
    );
    let f4 = failures(checkpoint(&r, 4));
    assert!(f4.contains("vm1: VXLAN device vxlan0 is MISSING"), "{f4}");
    assert!(
        f4.contains(
            "bal1 -> serv3 (10.0.0.3): no answer (bal1 on vm1, serv3 on vm2: through the VXLAN)"
        ),
        "{f4}"
    );
    // Pairs on the same host still answer: only the tunnel is named.
    assert!(!f4.contains("serv1 -> serv2"), "{f4}");
}

/// The repairs a report lists, newest first.
fn undone_list(r: &serde_json::Value) -> Vec<&str> {
    r["undone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect()
}

/// A verify run that panics right after taking vswout1 down, one that errors with the
/// tunnel cut and bal1's link down, and one interrupted with SIGINT: each puts back what
/// it broke (newest first), and the lab is as before.
#[test]
fn panic_error_or_interrupt_mid_failure_leaves_the_lab_as_it_was() {
    require_root();
    let lab = Lab::up(None);
    let (code, r) = verify(
        &lab,
        &["--only", "3"],
        &[("LBCTL_VERIFY_TEST_FAULT", "error:link bal1 - vswout1")],
    );
    assert_eq!(code, 1, "{r:#}");
    let c = checkpoint(&r, 3);
    assert!(
        failures(c).contains("test fault after link bal1 - vswout1 down"),
        "{c:#}"
    );
    let undone = undone_list(&r);
    assert_eq!(
        undone[..2],
        [
            "link bal1 - vswout1 up: ok",
            "tunnel cut removed from swout1, swout2: ok"
        ],
        "{undone:?}"
    );
    assert_at_rest(&lab);

    let (code, r) = verify(
        &lab,
        &["--only", "2"],
        &[("LBCTL_VERIFY_TEST_FAULT", "panic:bridge vswout1")],
    );
    assert_eq!(code, 1, "{r:#}");
    let c = checkpoint(&r, 2);
    assert!(
        failures(c).contains("test fault after bridge vswout1 down"),
        "{c:#}"
    );
    let undone = undone_list(&r);
    assert_eq!(undone[0], "bridge vswout1 up: ok", "{undone:?}");
    assert_at_rest(&lab);

    let mut child = Command::new(lbctl_bin())
        .args(["verify", "--json", "--only", "2", "--lab", &lab.name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr to the end on a thread (closing it early would break the child's
    // writes); lines arrive through a channel.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut sent = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        seen.push(line.clone());
        if line.trim() == "bridge vswout1 down" {
            std::thread::sleep(Duration::from_millis(1000));
            // The verify process this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            sent = true;
            break;
        }
    }
    assert!(sent, "never saw vswout1 go down: {seen:#?}");
    let o = child.wait_with_output().unwrap();
    seen.extend(rx.try_iter());
    let _ = reader.join();
    seen.extend(rx.try_iter());
    assert_eq!(o.status.code(), Some(130), "{seen:#?}\n{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["passed"], false);
    assert_eq!(r["undone"][0], "bridge vswout1 up: ok", "{r:#}");
    assert_at_rest(&lab);
}
