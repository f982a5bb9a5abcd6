//! Port Role Selection (17.28): the bridge's root priority vector and every port's role,
//! computed again whenever a port asks for it (reselect).

use super::super::types::{PriorityVector, Times};
use super::port::InfoIs;
use super::{Bridge, Role};

impl Bridge {
    /// ROLE_SELECTION (17.28): when any port has reselect set, clearReselectTree,
    /// updtRolesTree, setSelectedTree. True if it ran.
    pub(super) fn step_role_select(&mut self) -> bool {
        if !self.ports.iter().any(|p| p.reselect) {
            return false;
        }
        for p in &mut self.ports {
            p.reselect = false;
        }
        self.updt_roles_tree();
        // setSelectedTree (17.21.16): nothing asked for reselection meanwhile.
        for p in &mut self.ports {
            p.selected = true;
        }
        true
    }

    /// updtRolesTree (17.21.25): the best of the bridge's own vector and every root path
    /// priority vector becomes the root priority vector; then each port's designated vector
    /// and role.
    fn updt_roles_tree(&mut self) {
        let (root_priority, root_port) = self.best_root();
        self.root_priority = root_priority;
        self.root_port = root_port;
        self.root_times = match root_port {
            Some(r) => age_one_second(self.ports[r].port_times),
            None => self.bridge_times,
        };
        let my = self.cfg.id;
        let hello = self.bridge_times.hello_time;
        for i in 0..self.ports.len() {
            let p = &mut self.ports[i];
            p.designated_priority = PriorityVector {
                root: root_priority.root,
                root_path_cost: root_priority.root_path_cost,
                designated_bridge: my,
                designated_port: p.port_id,
                bridge_port: p.port_id,
            };
            p.designated_times = Times {
                hello_time: hello,
                ..self.root_times
            };
            self.select_role(i);
        }
    }

    /// The root priority vector and the root port: root path priority vectors (17.6) are the
    /// port priority vectors received from other bridges plus the port's path cost.
    fn best_root(&self) -> (PriorityVector, Option<usize>) {
        let my = self.cfg.id;
        let mut best = (self.bridge_priority(), None);
        for (i, p) in self.ports.iter().enumerate() {
            if p.info_is != InfoIs::Received || p.port_priority.designated_bridge.mac == my.mac {
                continue;
            }
            let v = PriorityVector {
                root_path_cost: p
                    .port_priority
                    .root_path_cost
                    .saturating_add(p.cfg.path_cost),
                ..p.port_priority
            };
            if v < best.0 {
                best = (v, Some(i));
            }
        }
        best
    }

    /// The role of port `i` (17.21.25 a–g), and updtInfo where the port must send our info.
    fn select_role(&mut self, i: usize) {
        let is_root = self.root_port == Some(i);
        let my = self.cfg.id;
        let times = self.ports[i].designated_times;
        let p = &mut self.ports[i];
        let (role, updt) = match p.info_is {
            InfoIs::Disabled => (Role::Disabled, false),
            InfoIs::Aged => (Role::Designated, true),
            InfoIs::Mine => (
                Role::Designated,
                p.port_priority != p.designated_priority
                    || !super::priority::same_seconds(&p.port_times, &times),
            ),
            InfoIs::Received if is_root => (Role::Root, false),
            InfoIs::Received if p.designated_priority < p.port_priority => (Role::Designated, true),
            InfoIs::Received if p.port_priority.designated_bridge.mac != my.mac => {
                (Role::Alternate, false)
            }
            InfoIs::Received => (Role::Backup, false),
        };
        p.selected_role = role;
        p.updt_info = updt;
    }
}

/// rootTimes from the root port's times: Message Age one second older (17.21.25), rounded
/// to whole seconds.
fn age_one_second(t: Times) -> Times {
    let s = Times::SECOND;
    let rounded = (u32::from(t.message_age) + u32::from(s) / 2) / u32::from(s) * u32::from(s);
    Times {
        message_age: (rounded + u32::from(s)).min(u32::from(u16::MAX)) as u16,
        ..t
    }
}
