//! Port Role Transitions (17.29): how a port takes up the role Port Role Selection gave it,
//! safely: a new root port forwards at once only when no recent root port may still forward
//! (reRooted), a designated port forwards at once only when the port on the other end agreed
//! (proposal/agreement), and a port that agrees first puts every designated port of its own
//! bridge in sync (discarding or agreed) so no loop opens.
//!
//! The transient states (ROOT_PROPOSED, DESIGNATED_SYNCED, …) are each one procedure; the
//! resting state is kept in [`Prt`].

use super::port::Prt;
use super::{Bridge, Role};

impl Bridge {
    /// One transition of port `i`'s Port Role Transitions machine; true if it moved. Every
    /// transition waits for role selection to be done (selected && !updtInfo).
    pub(super) fn step_role_tx(&mut self, i: usize) -> bool {
        let p = &self.ports[i];
        if !p.selected || p.updt_info {
            return false;
        }
        if p.role != p.selected_role {
            self.enter_role(i);
            return true;
        }
        match p.prt {
            Prt::Disable | Prt::Block => {
                if p.learning || p.forwarding {
                    return false;
                }
                if p.prt == Prt::Disable {
                    self.disabled_port(i);
                } else {
                    self.alternate_port(i);
                }
                true
            }
            Prt::Disabled => {
                // Reentered while fdWhile != MaxAge: restarting a held timer alone is not a
                // change of state for the "run until stable" loop; clearing flags is.
                let hold = !p.fd_while.holds(self.now, p.max_age());
                let flags = p.sync || p.re_root || !p.synced;
                if hold || flags {
                    self.disabled_port(i);
                }
                flags
            }
            Prt::Root => self.root_port_step(i),
            Prt::Designated => self.designated_step(i),
            Prt::Alternate => self.alternate_step(i),
        }
    }

    /// The entry state of the selected role: DISABLE_PORT, ROOT_PORT, DESIGNATED_PORT or
    /// BLOCK_PORT.
    fn enter_role(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.ports[i];
        p.role = p.selected_role;
        match p.role {
            Role::Disabled | Role::Alternate | Role::Backup => {
                p.learn = false;
                p.forward = false;
                p.prt = if p.role == Role::Disabled {
                    Prt::Disable
                } else {
                    Prt::Block
                };
            }
            Role::Root => {
                let fwd = p.fwd_delay();
                p.rr_while.set(now, fwd);
                p.prt = Prt::Root;
            }
            Role::Designated => p.prt = Prt::Designated,
        }
    }

    /// DISABLED_PORT: a port with no link is synced and no recent root.
    fn disabled_port(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.ports[i];
        let max_age = p.max_age();
        p.prt = Prt::Disabled;
        p.fd_while.set(now, max_age);
        p.synced = true;
        p.rr_while.stop();
        p.sync = false;
        p.re_root = false;
    }

    /// ALTERNATE_PORT: a discarding alternate or backup port is synced and no recent root.
    fn alternate_port(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.ports[i];
        let fd = p.forward_delay();
        p.prt = Prt::Alternate;
        p.fd_while.set(now, fd);
        p.synced = true;
        p.rr_while.stop();
        p.sync = false;
        p.re_root = false;
    }

    /// The root port's transitions (17.29.2): ROOT_PROPOSED, ROOT_AGREED, REROOT, ROOT_PORT
    /// (rrWhile held at FwdDelay), REROOTED, ROOT_LEARN, ROOT_FORWARD.
    fn root_port_step(&mut self, i: usize) -> bool {
        let now = self.now;
        let all_synced = self.all_synced();
        let re_rooted = self.re_rooted(i);
        let rstp = self.rstp_version();
        let p = &mut self.ports[i];
        let fast = p.fd_while.is_zero(now) || re_rooted && p.rb_while.is_zero(now) && rstp;
        if p.proposed && !p.agree {
            p.proposed = false;
            self.set_sync_tree();
        } else if all_synced && !p.agree || p.proposed && p.agree {
            p.proposed = false;
            p.sync = false;
            p.agree = true;
            p.new_info = true;
        } else if !p.forward && !p.re_root {
            self.set_re_root_tree();
        } else if !p.rr_while.holds(now, p.fwd_delay()) {
            let fwd = p.fwd_delay();
            p.rr_while.set(now, fwd);
            return false;
        } else if p.re_root && p.forward {
            p.re_root = false;
        } else if fast && !p.learn {
            let fd = p.forward_delay();
            p.fd_while.set(now, fd);
            p.learn = true;
        } else if fast && p.learn && !p.forward {
            p.fd_while.stop();
            p.forward = true;
        } else {
            return false;
        }
        true
    }

    /// The designated port's transitions (17.29.3): DESIGNATED_PROPOSE, DESIGNATED_SYNCED,
    /// DESIGNATED_RETIRED, DESIGNATED_DISCARD, DESIGNATED_LEARN, DESIGNATED_FORWARD.
    fn designated_step(&mut self, i: usize) -> bool {
        let now = self.now;
        let edge_delay = self.edge_delay(i);
        let p = &mut self.ports[i];
        let rr_zero = p.rr_while.is_zero(now);
        let may_forward = (p.fd_while.is_zero(now) || p.agreed || p.oper_edge)
            && (rr_zero || !p.re_root)
            && !p.sync;
        if (p.sync && !p.synced || p.re_root && !rr_zero || p.disputed)
            && !p.oper_edge
            && (p.learn || p.forward)
        {
            // DESIGNATED_DISCARD
            let fd = p.forward_delay();
            p.learn = false;
            p.forward = false;
            p.disputed = false;
            p.fd_while.set(now, fd);
        } else if may_forward && !p.learn {
            // DESIGNATED_LEARN
            let fd = p.forward_delay();
            p.learn = true;
            p.fd_while.set(now, fd);
        } else if may_forward && p.learn && !p.forward {
            // DESIGNATED_FORWARD
            p.forward = true;
            p.fd_while.stop();
            p.agreed = p.send_rstp;
        } else if !p.forward && !p.agreed && !p.proposing && !p.oper_edge {
            // DESIGNATED_PROPOSE
            p.proposing = true;
            p.edge_delay_while.set(now, edge_delay);
            p.new_info = true;
        } else if (!p.learning && !p.forwarding || p.agreed || p.oper_edge) && !p.synced
            || p.sync && p.synced
        {
            // DESIGNATED_SYNCED
            p.rr_while.stop();
            p.synced = true;
            p.sync = false;
        } else if rr_zero && p.re_root {
            // DESIGNATED_RETIRED
            p.re_root = false;
        } else {
            return false;
        }
        true
    }

    /// The alternate and backup port's transitions (17.29.4): ALTERNATE_PROPOSED,
    /// ALTERNATE_AGREED, ALTERNATE_PORT (fdWhile held at forwardDelay), BACKUP_PORT.
    fn alternate_step(&mut self, i: usize) -> bool {
        let now = self.now;
        let all_synced = self.all_synced();
        let p = &mut self.ports[i];
        let two_hellos = 2 * p.hello_time();
        if p.proposed && !p.agree {
            p.proposed = false;
            self.set_sync_tree();
        } else if all_synced && !p.agree || p.proposed && p.agree {
            p.proposed = false;
            p.agree = true;
            p.new_info = true;
        } else if p.sync || p.re_root || !p.synced {
            self.alternate_port(i);
        } else if !p.fd_while.holds(now, p.forward_delay()) {
            self.alternate_port(i);
            return false;
        } else if p.role == Role::Backup && !p.rb_while.holds(now, two_hellos) {
            p.rb_while.set(now, two_hellos);
            return false;
        } else {
            return false;
        }
        true
    }

    /// allSynced (17.20.3, as corrected in 802.1Q): every port has taken up its selected
    /// role and is synced, or is the root port.
    fn all_synced(&self) -> bool {
        self.ports.iter().all(|p| {
            p.selected
                && p.role == p.selected_role
                && !p.updt_info
                && (p.synced || p.role == Role::Root)
        })
    }

    /// reRooted (17.20.10): no other port is a recent root port (rrWhile zero).
    fn re_rooted(&self, i: usize) -> bool {
        let now = self.now;
        self.ports
            .iter()
            .enumerate()
            .all(|(k, p)| k == i || p.rr_while.is_zero(now))
    }

    /// setSyncTree (17.21.14).
    fn set_sync_tree(&mut self) {
        for p in &mut self.ports {
            p.sync = true;
        }
    }

    /// setReRootTree (17.21.15).
    fn set_re_root_tree(&mut self) {
        for p in &mut self.ports {
            p.re_root = true;
        }
    }

    /// EdgeDelay (17.20.4): MigrateTime on a point-to-point link, MaxAge otherwise.
    pub(super) fn edge_delay(&self, i: usize) -> std::time::Duration {
        let p = &self.ports[i];
        if p.oper_p2p {
            super::timers::secs(self.cfg.migrate_time)
        } else {
            p.max_age()
        }
    }
}
