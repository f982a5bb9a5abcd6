//! The model as Graphviz DOT. Every node, cluster and edge carries a stable `id` and
//! `class`es (Graphviz copies both into the SVG), so tests and the dashboard can find
//! them: `node-bal1` with `balancer master`, `link-vswout1-swout1` with
//! `link blocked blk-vswout1__to-swout1`, `vxlan-vm1-vm2` with `vxlan`…

use super::model::{EdgeKind, GEdge, GNode, Model, NodeKind};
use std::fmt::Write;

/// Colours of the LANs' edges, in config order (then grey).
const LAN_COLOURS: [&str; 4] = ["#1f6fb2", "#2e8b57", "#8a5a00", "#6a3d9a"];
const BLOCKED: &str = "#d62728";
const MASTER_FILL: &str = "#ffd84d";
const UP_FILL: &str = "#b8e6b8";
const DOWN_FILL: &str = "#f4a6a6";
const UNKNOWN_FILL: &str = "#e0e0e0";

/// A DOT string literal.
fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Class names may only hold letters, digits, '-' and '_'.
fn class_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn lan_colour(m: &Model, lan: Option<&str>) -> &'static str {
    lan.and_then(|l| m.lans.iter().position(|x| x.name == l))
        .and_then(|i| LAN_COLOURS.get(i).copied())
        .unwrap_or("#666666")
}

/// How a node is drawn: SVG classes, DOT attributes, style and fill colour.
struct Look {
    classes: Vec<String>,
    attrs: Vec<(String, String)>,
    style: Vec<&'static str>,
    fill: String,
}

impl Look {
    fn attr(&mut self, k: &str, v: &str) {
        self.attrs.push((k.into(), v.into()));
    }
}

fn node_line(m: &Model, n: &GNode) -> String {
    let mut look = Look {
        classes: vec![format!("{:?}", n.kind).to_lowercase()],
        attrs: Vec::new(),
        style: vec!["filled"],
        fill: "#ffffff".to_string(),
    };
    let mut label = n.name.clone();
    for l in &n.lines {
        label.push('\n');
        label.push_str(l);
    }
    match n.kind {
        NodeKind::Bridge => bridge_look(m, n, &mut look),
        NodeKind::Balancer => balancer_look(n, &mut look),
        NodeKind::Server => server_look(n, &mut look),
        NodeKind::User => {
            look.attr("shape", "ellipse");
            look.fill = "#f2f2f2".into();
        }
        NodeKind::Tunnel => {
            look.attr("shape", "ellipse");
            look.attr("color", "#6a3d9a");
            look.attr("fontcolor", "#6a3d9a");
            look.fill = "#f1eaf7".into();
        }
        NodeKind::Vip => {
            look.attr("shape", "octagon");
            look.fill = if n.down { UNKNOWN_FILL } else { MASTER_FILL }.into();
            look.attr("penwidth", "2");
        }
    }
    if n.down {
        look.classes.push("down".into());
        look.style.push("dashed");
        look.attr("fontcolor", "#888888");
        if n.kind != NodeKind::Vip {
            look.fill = "#dddddd".into();
        }
    }
    let mut o = format!(
        "{} [id={}, class={}, label={}, style={}, fillcolor={}",
        q(&n.id),
        q(&n.id),
        q(&look.classes.join(" ")),
        q(&label),
        q(&look.style.join(",")),
        q(&look.fill)
    );
    for (k, v) in look.attrs {
        let _ = write!(o, ", {k}={}", q(&v));
    }
    o.push_str("];");
    o
}

/// A bridge: rounded, in its LAN's colour; the root bridge doubled and gold.
fn bridge_look(m: &Model, n: &GNode, look: &mut Look) {
    look.attr("shape", "box");
    look.style.push("rounded");
    look.fill = "#eef4fb".into();
    if let Some(lan) = &n.lan {
        look.classes.push(format!("lan-{}", class_part(lan)));
        look.attr("color", lan_colour(m, Some(lan)));
    }
    if n.root {
        look.classes.push("root".into());
        look.attr("peripheries", "2");
        look.attr("penwidth", "2.5");
        look.style.push("bold");
        look.fill = "#fff3c4".into();
    }
}

/// A balancer: its VRRP state as a class; the master holding the VIP gold, an isolated
/// master dashed.
fn balancer_look(n: &GNode, look: &mut Look) {
    look.attr("shape", "box");
    if let Some(v) = &n.vrrp {
        look.classes
            .push(format!("vrrp-{}", v.as_str().to_lowercase()));
    }
    if n.master {
        look.classes.push("master".into());
        look.fill = MASTER_FILL.into();
        look.attr("penwidth", "3");
    } else if n.isolated_master {
        look.classes.push("isolated-master".into());
        look.style.push("dashed");
        look.fill = "#fff8dc".into();
    }
}

/// A server: one stripe per balancer, in balancer order, its view of this backend.
fn server_look(n: &GNode, look: &mut Look) {
    look.attr("shape", "box");
    look.classes.push("backend".into());
    if n.health.is_empty() {
        return;
    }
    let cols: Vec<&str> = n
        .health
        .iter()
        .map(|(_, up)| match up {
            Some(true) => UP_FILL,
            Some(false) => DOWN_FILL,
            None => UNKNOWN_FILL,
        })
        .collect();
    look.fill = cols.join(":");
    look.style.push("striped");
    for (b, up) in &n.health {
        let s = match up {
            Some(true) => "up",
            Some(false) => "down",
            None => "unknown",
        };
        look.classes.push(format!("health-{}-{s}", class_part(b)));
    }
}

/// Vertical order of a node: users and the VIP on top, then switches, the hosts' bridges
/// of each LAN in config order, with balancers and servers below the bridge they hang from.
fn level(m: &Model, id: &str) -> usize {
    let in_host = m.hosts.iter().any(|h| h.members.iter().any(|x| x == id));
    let lan_index = |lan: Option<&str>| {
        lan.and_then(|l| m.lans.iter().position(|x| x.name == l))
            .unwrap_or(0)
    };
    match m.node(id) {
        None => 0,
        Some(n) => match n.kind {
            NodeKind::User | NodeKind::Vip => 0,
            NodeKind::Bridge if !in_host => 1,
            NodeKind::Bridge => 2 + 2 * lan_index(n.lan.as_deref()),
            NodeKind::Balancer => 3,
            NodeKind::Server | NodeKind::Tunnel => 5,
        },
    }
}

/// How an edge is drawn.
struct Stroke {
    classes: Vec<String>,
    attrs: Vec<(&'static str, String)>,
    colour: String,
    style: Vec<&'static str>,
    penwidth: &'static str,
    tail: &'static str,
    head: &'static str,
}

/// The edge with its ends ordered top-down: dot ranks an edge's first end above its second.
fn top_down(m: &Model, e: &GEdge) -> GEdge {
    if level(m, &e.a) > level(m, &e.b) {
        GEdge {
            a: e.b.clone(),
            b: e.a.clone(),
            a_port: e.b_port.clone(),
            b_port: e.a_port.clone(),
            ..e.clone()
        }
    } else {
        e.clone()
    }
}

fn edge_line(m: &Model, e: &GEdge) -> String {
    let e = &top_down(m, e);
    let kind = match e.kind {
        EdgeKind::Link => "link",
        EdgeKind::Iface => "iface",
        EdgeKind::Vxlan => "vxlan",
        EdgeKind::Vip => "vip",
    };
    let mut st = Stroke {
        classes: vec![kind.to_string()],
        attrs: vec![("dir", "both".into())],
        colour: lan_colour(m, e.lan.as_deref()).to_string(),
        style: vec![],
        penwidth: "1.6",
        tail: "none",
        head: "none",
    };
    if e.kind == EdgeKind::Link || e.kind == EdgeKind::Iface {
        st.classes.insert(0, "wire".into());
    }
    if let Some(l) = &e.lan {
        st.classes.push(format!("lan-{}", class_part(l)));
    }
    mark_blocked(e, &mut st);
    match e.kind {
        EdgeKind::Vxlan => {
            st.colour = "#6a3d9a".into();
            st.style.push("bold");
            st.penwidth = "2.5";
            // A direct tunnel between two bridges of one rank must not push them apart.
            if e.a != "node-vxlan" && e.b != "node-vxlan" {
                st.attrs.push(("constraint", "false".into()));
            }
            st.attrs.push(("fontcolor", "#6a3d9a".into()));
        }
        EdgeKind::Vip => {
            st.colour = "#c9a000".into();
            st.penwidth = "3";
            st.attrs.push(("fontcolor", "#806600".into()));
        }
        _ => {}
    }
    if e.down {
        st.classes.push("down".into());
        st.colour = "#aaaaaa".into();
        st.style.push("dotted");
    }
    if let Some(l) = &e.label {
        if e.kind != EdgeKind::Iface {
            st.attrs.push(("label", l.clone()));
        }
        st.attrs.push(("fontsize", "9".into()));
    }
    let tooltip = tooltip(e);
    if !tooltip.is_empty() {
        st.attrs.push(("tooltip", tooltip));
    }
    let mut o = format!(
        "{} -- {} [id={}, class={}, color={}, penwidth={}, arrowtail={}, arrowhead={}",
        q(&e.a),
        q(&e.b),
        q(&e.id),
        q(&st.classes.join(" ")),
        q(&st.colour),
        st.penwidth,
        st.tail,
        st.head
    );
    if !st.style.is_empty() {
        let _ = write!(o, ", style={}", q(&st.style.join(",")));
    }
    for (k, v) in st.attrs {
        let _ = write!(o, ", {k}={}", q(&v));
    }
    o.push_str("];");
    o
}

/// An edge with STP-blocked ends: red, dashed, a labelled bar across the wire at each
/// blocked end.
fn mark_blocked(e: &GEdge, st: &mut Stroke) {
    let blocked = e.blocked_ports();
    if blocked.is_empty() {
        return;
    }
    st.classes.push("blocked".into());
    for b in &blocked {
        st.classes
            .push(format!("blk-{}", class_part(&b.replace('/', "__"))));
    }
    st.colour = BLOCKED.into();
    st.style.push("dashed");
    let at = |p: &Option<super::model::PortEnd>| {
        p.as_ref()
            .is_some_and(|p| blocked.contains(&format!("{}/{}", p.bridge, p.port)))
    };
    if at(&e.a_port) {
        st.tail = "teetee";
        st.attrs.push(("taillabel", "✂ blocked".into()));
    }
    if at(&e.b_port) {
        st.head = "teetee";
        st.attrs.push(("headlabel", "✂ blocked".into()));
    }
    st.attrs.push(("labelfontcolor", BLOCKED.into()));
    st.attrs.push(("labelfontsize", "9".into()));
}

/// Each bridge port end's number and state, one per line.
fn tooltip(e: &GEdge) -> String {
    [&e.a_port, &e.b_port]
        .into_iter()
        .flatten()
        .map(|p| {
            let role = p
                .rstp_role
                .as_ref()
                .map(|r| format!(", RSTP {r}"))
                .unwrap_or_default();
            format!(
                "{}/{} (port {}): {}{role}",
                p.bridge,
                p.port,
                p.port_no,
                p.state
                    .map(|s| format!("{s:?}").to_lowercase())
                    .unwrap_or_else(|| "-".into())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The whole picture as an undirected DOT graph.
pub fn to_dot(m: &Model) -> String {
    let mut o = String::new();
    // The opening brace is pushed as text, not escaped in a format string, so tools that
    // count braces (longfns.py) see it matched by the closing one.
    o.push_str(&format!("graph {} ", q(&format!("lab-{}", m.lab))));
    o.push_str("{\n");
    let _ = writeln!(
        o,
        "  graph [id=\"lab\", class=\"lab\", rankdir=TB, newrank=true, nodesep=0.35, ranksep=0.55, fontname=\"Helvetica\", fontsize=11, labelloc=b, label={}];",
        q(&legend(m))
    );
    let _ = writeln!(
        o,
        "  node [fontname=\"Helvetica\", fontsize=10, margin=\"0.12,0.05\"];\n  edge [fontname=\"Helvetica\"];"
    );
    let in_host = |id: &str| m.hosts.iter().any(|h| h.members.iter().any(|x| x == id));
    // Users first, then the switches, at the top: the external LAN.
    let switches: Vec<&GNode> = m
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Bridge && !in_host(&n.id))
        .collect();
    switch_cluster(&mut o, m, &switches);
    for h in &m.hosts {
        host_cluster(&mut o, m, h);
    }
    for n in m
        .nodes
        .iter()
        .filter(|n| n.kind != NodeKind::Bridge && !in_host(&n.id))
    {
        let _ = writeln!(o, "  {}", node_line(m, n));
    }
    // Rank hints: users and the VIP on top, then the switches.
    let ids = |k: NodeKind| -> Vec<String> {
        m.nodes
            .iter()
            .filter(|n| n.kind == k && !in_host(&n.id))
            .map(|n| q(&n.id))
            .collect()
    };
    let mut top = ids(NodeKind::User);
    top.extend(ids(NodeKind::Vip));
    if !top.is_empty() {
        let _ = writeln!(o, "  {{ rank=min; {} }}", top.join("; "));
    }
    let sw: Vec<String> = switches.iter().map(|n| q(&n.id)).collect();
    if !sw.is_empty() {
        let _ = writeln!(o, "  {{ rank=same; {} }}", sw.join("; "));
    }
    for e in &m.edges {
        let _ = writeln!(o, "  {}", edge_line(m, e));
    }
    o.push_str("}\n");
    o
}

/// The picture's caption: the lab, its LANs' colours, what the marks mean.
fn legend(m: &Model) -> String {
    let mut legend = format!("lab {}", m.lab);
    for (i, l) in m.lans.iter().enumerate() {
        let colour = ["blue", "green", "brown", "purple"]
            .get(i)
            .unwrap_or(&"grey");
        let _ = write!(legend, "  ·  {} LAN {} ({colour})", l.name, l.subnet);
    }
    legend.push_str(
        "\nred dashed ✂ = port blocked by STP  ·  double border = root bridge  ·  gold = VRRP master holding the VIP  ·  stripes = backend health as each balancer sees it",
    );
    if !m.live {
        legend.push_str("\n(config only: the lab is not running)");
    }
    legend
}

/// The switches (bridges outside every host), in one dashed cluster.
fn switch_cluster(o: &mut String, m: &Model, switches: &[&GNode]) {
    if switches.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "  subgraph \"cluster_switches\" {{\n    id=\"cluster-switches\"; class=\"switches\"; label=\"switches\"; labelloc=t; style=\"rounded,dashed\"; color=\"#999999\"; fontsize=10;"
    );
    for n in switches {
        let _ = writeln!(o, "    {}", node_line(m, n));
    }
    let _ = writeln!(o, "  }}");
}

/// One host's cluster with its members.
fn host_cluster(o: &mut String, m: &Model, h: &super::model::Cluster) {
    let _ = writeln!(
        o,
        "  subgraph {} {{\n    id={}; class={}; label={}; style=\"rounded{}\"; color=\"#555555\"; bgcolor=\"#fafafa\"; fontsize=12; labelloc=t;",
        q(&format!("cluster_{}", h.name)),
        q(&format!("cluster-{}", h.name)),
        q(if h.down { "host down" } else { "host" }),
        q(&format!("host {}", h.name)),
        if h.down { ",dashed" } else { "" }
    );
    for id in &h.members {
        if let Some(n) = m.node(id) {
            let _ = writeln!(o, "    {}", node_line(m, n));
        }
    }
    let _ = writeln!(o, "  }}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn default_config_draws_every_node_link_and_host() {
        let m = Model::build(&Config::default_scenario(), None);
        let d = to_dot(&m);
        for id in [
            "node-swout1",
            "node-swout2",
            "node-vswout1",
            "node-vswin2",
            "node-bal1",
            "node-serv3",
            "node-user2",
            "node-vip",
            "link-swout1-swout2",
            "link-vswout2-swout2",
            "iface-bal1-eth1",
            "vxlan-vm1-vm2",
            "cluster-vm1",
            "cluster-vm2",
        ] {
            assert!(d.contains(&format!("id=\"{id}\"")), "{id} missing:\n{d}");
        }
        // Without live state nothing is blocked, rooted or master, and the VIP is unheld.
        assert!(m.blocked.is_empty() && m.masters.is_empty() && m.roots.is_empty());
        assert!(m.node("node-vip").unwrap().down);
        assert!(d.contains("config only"));
        // Every edge is written top-down: a switch above its hosts' bridges.
        assert!(d.contains("\"node-swout1\" -- \"node-vswout1\""), "{d}");
        assert!(d.contains("\"node-vswin1\" -- \"node-serv1\""), "{d}");
    }

    #[test]
    fn dot_strings_are_escaped() {
        assert_eq!(q("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(class_part("vswout1/to-swout1"), "vswout1_to-swout1");
    }
}
