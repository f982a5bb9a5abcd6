//! Port Transmit (17.26): a BPDU when there is news (newInfo) and one every Hello Time from
//! designated ports, at most TxHoldCount a second; RST BPDUs, or configuration and TCN
//! BPDUs on a port that migrated to 802.1D.

use super::super::types::{Bpdu, ConfigBody, Flags, WireRole};
use super::port::Ptx;
use super::timers::secs;
use super::{Action, Bridge, Role};

impl Bridge {
    /// One transition of port `i`'s Port Transmit machine; true if it moved.
    pub(super) fn step_transmit(&mut self, i: usize) -> bool {
        let now = self.now;
        let hold = self.cfg.tx_hold_count;
        let p = &mut self.ports[i];
        match p.ptx {
            // TRANSMIT_INIT holds while the port is down.
            Ptx::Init | Ptx::Idle if !p.enabled => {
                let changed = p.ptx != Ptx::Init;
                p.ptx = Ptx::Init;
                p.new_info = true;
                p.tx_count = 0;
                p.tx_decay.stop();
                changed
            }
            Ptx::Init => {
                self.tx_idle(i);
                true
            }
            Ptx::Idle if !p.selected || p.updt_info => false,
            Ptx::Idle if p.hello_when.is_zero(now) => {
                // TRANSMIT_PERIODIC then IDLE.
                p.new_info = p.new_info
                    || p.role == Role::Designated
                    || p.role == Role::Root && !p.tc_while.is_zero(now);
                self.tx_idle(i);
                true
            }
            Ptx::Idle if p.new_info && p.tx_count < hold => self.transmit(i),
            Ptx::Idle => false,
        }
    }

    /// IDLE: wait for news or the hello timer.
    fn tx_idle(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.ports[i];
        let hello = p.hello_time();
        p.ptx = Ptx::Idle;
        p.hello_when.set(now, hello);
    }

    /// TRANSMIT_RSTP, TRANSMIT_CONFIG or TRANSMIT_TCN; false if this role sends nothing in
    /// 802.1D mode (an alternate port stays silent there).
    fn transmit(&mut self, i: usize) -> bool {
        let now = self.now;
        let p = &self.ports[i];
        let bpdu = match (p.send_rstp, p.role) {
            (_, Role::Disabled) => return false,
            (true, _) => Bpdu::Rst(self.config_body(i, true)),
            (false, Role::Root) => Bpdu::Tcn,
            (false, Role::Designated) => Bpdu::Config(self.config_body(i, false)),
            (false, _) => return false,
        };
        let p = &mut self.ports[i];
        p.new_info = false;
        p.tx_count += 1;
        if p.tx_decay.is_zero(now) {
            p.tx_decay.set(now, secs(1));
        }
        if !matches!(bpdu, Bpdu::Tcn) {
            p.tc_ack = false;
        }
        let c = &mut p.counters;
        c.bpdus_tx += 1;
        match bpdu {
            Bpdu::Rst(b) | Bpdu::Config(b) => {
                c.proposals_tx += u64::from(b.flags.proposal);
                c.agreements_tx += u64::from(b.flags.agreement);
                c.tc_tx += u64::from(b.flags.tc);
            }
            Bpdu::Tcn => c.tc_tx += 1,
        }
        let port = p.cfg.number;
        self.out.push(Action::Send { port, bpdu });
        true
    }

    /// txRstp / txConfig (17.21.19, 17.21.20): the port's designated priority vector and
    /// times, and its flags.
    fn config_body(&self, i: usize, rst: bool) -> ConfigBody {
        let p = &self.ports[i];
        let tc = !p.tc_while.is_zero(self.now);
        let flags = if rst {
            Flags {
                tc,
                proposal: p.proposing && p.role == Role::Designated,
                role: match p.role {
                    Role::Root => WireRole::Root,
                    Role::Designated => WireRole::Designated,
                    Role::Alternate | Role::Backup | Role::Disabled => WireRole::AlternateOrBackup,
                },
                learning: p.learning,
                forwarding: p.forwarding,
                agreement: p.agree,
                tca: false,
            }
        } else {
            Flags {
                tc,
                tca: p.tc_ack,
                ..Flags::default()
            }
        };
        let d = p.designated_priority;
        ConfigBody {
            flags,
            root: d.root,
            root_path_cost: d.root_path_cost,
            bridge: d.designated_bridge,
            port: d.designated_port,
            times: p.designated_times,
        }
    }

    /// The hold count's window: at most TxHoldCount BPDUs per second and port (17.13.12).
    ///
    /// The standard's Port Timers machine (17.22) takes one off txCount per second instead;
    /// with the lab's 1 s Hello Time each periodic BPDU adds what the tick takes, so after a
    /// burst of changes the count would stay at the limit and hold every later piece of news
    /// back until the next hello (measured in the flap test: ~1 s settling instead of ms).
    /// Counting per one-second window keeps the limit and not that side effect.
    pub(super) fn expire_tx_counts(&mut self) {
        let now = self.now;
        for p in &mut self.ports {
            if p.tx_count > 0 && p.tx_decay.is_zero(now) {
                p.tx_count = 0;
                p.tx_decay.stop();
            }
        }
    }
}
