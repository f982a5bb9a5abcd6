//! Names the kernel and the namespaces impose: the lab name (it prefixes every namespace),
//! namespace names (switches, hosts and nodes share one space), and interface names (the
//! kernel's rule, unique inside each namespace).

use super::Problems;
use crate::config::model::Config;
use std::collections::HashMap;

/// The lab name prefixes namespace names (`lbctl-<lab>-<node>`): short, and only
/// characters that cannot make one lab's prefix a prefix of another's.
pub fn check_lab_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 12 {
        return Err(format!("lab name {name:?} must be 1 to 12 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "lab name {name:?} may only hold lowercase letters and digits (it prefixes namespace names)"
        ));
    }
    Ok(())
}

/// The kernel's rule for interface names (dev_valid_name): 1..=15 bytes, not `.`/`..`,
/// no `/`, `:` or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name {name:?} is {} characters; the kernel allows at most 15",
            name.len()
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "interface name {name:?} is not valid (no '/', ':', spaces, '.' or '..')"
        ));
    }
    Ok(())
}

/// `lab.name`.
pub fn lab(cfg: &Config) -> Problems {
    let mut out = Problems::default();
    if let Err(r) = check_lab_name(&cfg.lab.name) {
        out.err("lab.name", r);
    }
    out
}

/// Switches, hosts and nodes each become a namespace: their names share one space.
pub fn namespaces(cfg: &Config) -> Problems {
    let mut out = Problems::default();
    let mut seen: HashMap<&str, String> = HashMap::new();
    let switches = cfg.switches.iter().enumerate();
    let switches = switches.map(|(i, s)| (s.name.as_str(), format!("switch[{i}].name")));
    let hosts = cfg.hosts.iter().enumerate();
    let hosts = hosts.map(|(i, h)| (h.name.as_str(), format!("host[{i}].name")));
    let nodes = cfg.nodes.iter().enumerate();
    let nodes = nodes.map(|(i, n)| (n.name.as_str(), format!("node[{i}].name")));
    for (name, field) in switches.chain(hosts).chain(nodes) {
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            out.err(
                field.clone(),
                format!("node name {name:?} must be non-empty letters, digits, '-' or '_'"),
            );
        }
        if let Some(prev) = seen.get(name) {
            out.err(
                field,
                format!("duplicate name {name:?} (already used by {prev})"),
            );
        } else {
            seen.insert(name, field);
        }
    }
    out
}

/// The interface names each namespace already holds, with the field that claimed each.
#[derive(Debug, Default)]
pub struct IfNames(HashMap<String, HashMap<String, String>>);

impl IfNames {
    /// Claims `name` in namespace `ns` for `field`: it must be a valid kernel name and not
    /// already taken there (the first claim keeps it).
    pub fn claim(&mut self, out: &mut Problems, ns: &str, name: &str, field: String) {
        if let Err(r) = check_ifname(name) {
            out.err(field.clone(), r);
        }
        let names = self.0.entry(ns.to_string()).or_default();
        if let Some(prev) = names.get(name) {
            out.err(
                field,
                format!("interface name {name:?} is already used in namespace {ns:?} by {prev}"),
            );
        } else {
            names.insert(name.to_string(), field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn bad_lab_name() {
        let msg = refused("name = \"lab\"", "name = \"my-lab\"");
        assert_names(&msg, "lab.name", &["lowercase letters and digits"]);
        let cfg = parsed(&[("name = \"lab\"", "name = \"abcdefghijklm\"")]);
        assert_eq!(
            lab(&cfg).into_vec(),
            [problem(
                "lab.name",
                "lab name \"abcdefghijklm\" must be 1 to 12 characters"
            )]
        );
    }

    #[test]
    fn duplicate_node_name() {
        let msg = refused("name = \"user2\"", "name = \"user1\"");
        assert_names(&msg, "node[1].name", &["duplicate name \"user1\""]);
    }

    #[test]
    fn namespace_names_are_shared_and_checked() {
        let cfg = parsed(&[
            ("name = \"vm2\"", "name = \"swout1\""),
            ("name = \"user1\"", "name = \"us er1\""),
        ]);
        assert_eq!(
            namespaces(&cfg).into_vec(),
            [
                problem(
                    "host[1].name",
                    "duplicate name \"swout1\" (already used by switch[0].name)"
                ),
                problem(
                    "node[0].name",
                    "node name \"us er1\" must be non-empty letters, digits, '-' or '_'"
                ),
            ]
        );
    }

    #[test]
    fn interface_names_follow_the_kernel_and_stay_unique_per_namespace() {
        let mut names = IfNames::default();
        let mut out = Problems::default();
        names.claim(&mut out, "a", "eth0", "x".into());
        names.claim(&mut out, "b", "eth0", "y".into());
        names.claim(&mut out, "a", "eth0", "z".into());
        names.claim(&mut out, "a", "e:1", "w".into());
        names.claim(&mut out, "a", "", "v".into());
        assert_eq!(
            out.into_vec(),
            [
                problem(
                    "z",
                    "interface name \"eth0\" is already used in namespace \"a\" by x"
                ),
                problem(
                    "w",
                    "interface name \"e:1\" is not valid (no '/', ':', spaces, '.' or '..')"
                ),
                problem("v", "interface name is empty"),
            ]
        );
        assert!(check_ifname("fifteen-chars-x").is_ok());
        assert_eq!(
            check_ifname("sixteen-chars-xy"),
            Err("interface name \"sixteen-chars-xy\" is 16 characters; the kernel allows at most 15".into())
        );
    }
}
