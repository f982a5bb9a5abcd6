//! `lbctl graph`, `lbctl capture` and `lbctl logs` on a running default lab: the SVG parses,
//! holds every node and link of the config, marks exactly the ports the kernel reports as
//! blocked and the root it reports, and shows bal1 as the VRRP master — then bal2 once
//! vswout1 is down. A config twice the default's size draws too.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where tests leave files for people to look at (CI keeps target/).
fn artifacts() -> PathBuf {
    let d = repo_file("target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every element of the SVG with an id: id -> its classes.
/// Parses an SVG (Graphviz writes a DOCTYPE).
fn parse(svg: &str) -> roxmltree::Document<'_> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(svg, opts).expect("the SVG is well-formed XML")
}

fn svg_ids(svg: &str) -> BTreeMap<String, BTreeSet<String>> {
    let doc = parse(svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.is_element())
        .filter_map(|n| {
            let id = n.attribute("id")?;
            let classes = n
                .attribute("class")
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            Some((id.to_string(), classes))
        })
        .collect()
}

fn with_class(ids: &BTreeMap<String, BTreeSet<String>>, class: &str) -> BTreeSet<String> {
    ids.iter()
        .filter(|(_, c)| c.contains(class))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Blocked ports the picture marks, "bridge/port" (from the `blk-<bridge>__<port>` classes).
fn marked_blocked(ids: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut v: Vec<String> = ids
        .values()
        .flatten()
        .filter_map(|c| c.strip_prefix("blk-"))
        .map(|c| c.replacen("__", "/", 1))
        .collect();
    v.sort();
    v.dedup();
    // Every edge drawn as blocked names its blocked end, and only those are blocked.
    for (id, c) in ids {
        if c.contains("blocked") {
            assert!(c.iter().any(|x| x.starts_with("blk-")), "{id}: {c:?}");
        }
    }
    v
}

/// The ids a config's picture must hold: every switch/bridge, host, leaf node, link,
/// interface and tunnel, read from the TOML itself.
fn expected_ids(config: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_file(config)).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let arr = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let s = |x: &toml::Value, k: &str| x[k].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for sw in arr("switch") {
        ids.push(format!("node-{}", s(&sw, "name")));
    }
    for h in arr("host") {
        ids.push(format!("cluster-{}", s(&h, "name")));
        for b in h["bridge"].as_array().unwrap() {
            ids.push(format!("node-{}", s(b, "name")));
        }
    }
    for l in arr("link") {
        ids.push(format!("link-{}-{}", s(&l, "a"), s(&l, "b")));
    }
    for n in arr("node") {
        let name = s(&n, "name");
        ids.push(format!("node-{name}"));
        for i in n["iface"].as_array().unwrap() {
            ids.push(format!("iface-{name}-{}", s(i, "name")));
        }
    }
    if let Some(x) = v.get("vxlan") {
        let eps = x["endpoint"].as_array().unwrap();
        if eps.len() == 2 {
            ids.push(format!(
                "vxlan-{}-{}",
                s(&eps[0], "host"),
                s(&eps[1], "host")
            ));
        } else {
            ids.push("node-vxlan".into());
            for e in eps {
                ids.push(format!("vxlan-{}", s(e, "host")));
            }
        }
    }
    if v.get("service").is_some() {
        ids.push("node-vip".into());
    }
    ids
}

fn graph(lab: &Lab, file: &str) -> BTreeMap<String, BTreeSet<String>> {
    let out = artifacts().join(file);
    lab.run(&["graph", "-o", out.to_str().unwrap()]);
    svg_ids(&std::fs::read_to_string(&out).unwrap())
}

#[test]
fn graph_capture_and_logs_of_the_default_lab() {
    require_root();
    let lab = Lab::up(None);

    // The picture against the kernel.
    let st = lab.status();
    let ids = graph(&lab, "graph-default.svg");
    for id in expected_ids("configs/default.toml") {
        assert!(ids.contains_key(&id), "{id} missing from the SVG");
    }
    let kernel_blocked = blocked_ports(&st);
    assert!(!kernel_blocked.is_empty(), "the default lab blocks ports");
    assert_eq!(marked_blocked(&ids), kernel_blocked);
    let roots: BTreeSet<String> = lan_roots(&st, "ext")
        .iter()
        .map(|r| format!("node-{r}"))
        .collect();
    assert_eq!(with_class(&ids, "root"), roots);
    assert_eq!(
        with_class(&ids, "master"),
        BTreeSet::from(["node-bal1".to_string()])
    );
    assert!(with_class(&ids, "vxlan").contains("vxlan-vm1-vm2"));
    // With the tunnel up both balancers see every server up.
    for s in ["serv1", "serv2", "serv3"] {
        let c = &ids[&format!("node-{s}")];
        assert!(
            c.contains("health-bal1-up") && c.contains("health-bal2-up"),
            "{s}: {c:?}"
        );
    }

    // Captures: two VRRP adverts from bal1 on its external leg.
    let o = lbctl(&[
        "capture", "--lab", &lab.name, "bal1", "eth0", "--vrrp", "-c", "2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let adverts = out
        .lines()
        .filter(|l| l.contains("172.16.1.250 > 224.0.0.18: VRRPv2, Advertisement, vrid 12"))
        .count();
    assert_eq!(adverts, 2, "{}", text(&o));
    // BPDUs on vm1's link to the root.
    let o = lbctl(&[
        "capture",
        "--lab",
        &lab.name,
        "vm1",
        "to-swout2",
        "--stp",
        "-c",
        "1",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("STP 802.1d"),
        "{}",
        text(&o)
    );
    // A missing interface is refused with the node's interfaces listed.
    let o = lbctl(&["capture", "--lab", &lab.name, "bal1", "eth9", "-c", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("eth0"));

    // Logs: bal1's agent logged its way to MASTER.
    let logs = lab.run(&["logs", "bal1"]);
    assert!(
        logs.lines()
            .any(|l| l.contains("VRRP state change") && l.contains("MASTER")),
        "{logs}"
    );
    assert!(!logs.contains('\x1b'), "log files hold no colour codes");
    let o = lbctl(&["logs", "--lab", &lab.name, "swout1"]);
    assert!(!o.status.success(), "a switch runs no daemon");

    // Checkpoint 2: vswout1 down, bal2 takes the VIP; the picture follows.
    lab.run(&["bridge", "down", "vswout1"]);
    lab.wait_master(
        "bal2",
        Instant::now(),
        Duration::from_secs(15),
        "bal2 never master",
    );
    let ids = graph(&lab, "graph-vswout1-down.svg");
    let st = lab.status();
    assert_eq!(
        with_class(&ids, "master"),
        BTreeSet::from(["node-bal2".to_string()])
    );
    assert_eq!(marked_blocked(&ids), blocked_ports(&st));
    assert!(ids["node-vswout1"].contains("down"));
    // bal1 may still claim the VIP on its side of the cut: if so it is drawn isolated.
    if lab.vrrp_state("bal1") == "MASTER" {
        assert!(ids["node-bal1"].contains("isolated-master"));
    }
}

#[test]
fn graph_of_a_lab_twice_the_default_size() {
    // Config only (no lab needed): every node and link drawn, and a size a screen can show.
    let cfg = repo_file("tests/configs/big.toml");
    lbctl_ok(&["check", "-c", cfg.to_str().unwrap()]);
    let out = artifacts().join("graph-big.svg");
    let o = lbctl(&[
        "graph",
        "-c",
        cfg.to_str().unwrap(),
        "--lab",
        "tbig",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let svg = std::fs::read_to_string(&out).unwrap();
    let ids = svg_ids(&svg);
    let expected = expected_ids("tests/configs/big.toml");
    assert!(expected.len() > 2 * expected_ids("configs/default.toml").len() - 4);
    for id in expected {
        assert!(ids.contains_key(&id), "{id} missing from the SVG");
    }
    let doc = parse(&svg);
    let pt = |a: &str| {
        doc.root_element()
            .attribute(a)
            .unwrap()
            .trim_end_matches("pt")
            .parse::<f64>()
            .unwrap()
    };
    let (w, h) = (pt("width"), pt("height"));
    assert!(w < 1600.0 && h < 1000.0, "{w} x {h} pt");
    // Readable: no two nodes' shapes overlap.
    let boxes = node_boxes(&doc);
    assert_eq!(
        boxes.len(),
        ids.values().filter(|c| c.contains("node")).count()
    );
    for (i, (a, ba)) in boxes.iter().enumerate() {
        for (b, bb) in &boxes[i + 1..] {
            let apart = ba[2] <= bb[0] || bb[2] <= ba[0] || ba[3] <= bb[1] || bb[3] <= ba[1];
            assert!(apart, "{a} {ba:?} overlaps {b} {bb:?}");
        }
    }
}

/// Bounding box [x0, y0, x1, y1] of each node's shapes (polygons, paths, ellipses).
fn node_boxes(doc: &roxmltree::Document) -> Vec<(String, [f64; 4])> {
    let mut out = Vec::new();
    for g in doc.descendants().filter(|n| {
        n.has_tag_name("g")
            && n.attribute("class")
                .is_some_and(|c| c.split_whitespace().any(|x| x == "node"))
    }) {
        let mut pts: Vec<(f64, f64)> = Vec::new();
        for shape in g.descendants().filter(|n| n.is_element()) {
            let nums = |s: &str| -> Vec<f64> {
                s.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                    .filter_map(|x| x.parse().ok())
                    .collect()
            };
            match shape.tag_name().name() {
                "polygon" | "path" => {
                    let v = nums(
                        shape
                            .attribute("points")
                            .or(shape.attribute("d"))
                            .unwrap_or(""),
                    );
                    pts.extend(v.chunks_exact(2).map(|c| (c[0], c[1])));
                }
                "ellipse" => {
                    let f = |a: &str| shape.attribute(a).unwrap().parse::<f64>().unwrap();
                    let (cx, cy, rx, ry) = (f("cx"), f("cy"), f("rx"), f("ry"));
                    pts.push((cx - rx, cy - ry));
                    pts.push((cx + rx, cy + ry));
                }
                _ => {}
            }
        }
        assert!(!pts.is_empty(), "node {:?} has no shape", g.attribute("id"));
        let b = pts
            .iter()
            .fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, (x, y)| {
                [b[0].min(*x), b[1].min(*y), b[2].max(*x), b[3].max(*y)]
            });
        out.push((g.attribute("id").unwrap_or("?").to_string(), b));
    }
    out
}
