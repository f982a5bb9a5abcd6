//! Port Protocol Migration (17.24): a port talks RSTP until it hears an 802.1D bridge, then
//! sends configuration and TCN BPDUs; it tries RSTP again when its link goes down or an RST
//! BPDU arrives. mdelayWhile keeps each decision for MigrateTime so two bridges do not flap.

use super::port::Ppm;
use super::timers::secs;
use super::Bridge;

impl Bridge {
    /// One transition of port `i`'s Port Protocol Migration machine; true if it moved.
    pub(super) fn step_migration(&mut self, i: usize) -> bool {
        let now = self.now;
        let rstp = self.rstp_version();
        let migrate = secs(self.cfg.migrate_time);
        let p = &mut self.ports[i];
        match p.ppm {
            // Reentered while the port is down (mdelayWhile != MigrateTime): only the held
            // timer and sendRSTP can change.
            Ppm::CheckingRstp if !p.enabled => {
                let changed = p.send_rstp != rstp || p.mcheck;
                if changed || !p.mdelay_while.holds(now, migrate) {
                    self.checking_rstp(i);
                }
                changed
            }
            Ppm::CheckingRstp if p.mdelay_while.is_zero(now) => self.sensing(i),
            Ppm::SelectingStp if p.mdelay_while.is_zero(now) || !p.enabled || p.mcheck => {
                self.sensing(i)
            }
            Ppm::Sensing if !p.enabled || p.mcheck || rstp && !p.send_rstp && p.rcvd_rstp => {
                self.checking_rstp(i);
                true
            }
            Ppm::Sensing if p.send_rstp && p.rcvd_stp => {
                p.ppm = Ppm::SelectingStp;
                p.send_rstp = false;
                p.mdelay_while.set(now, migrate);
                true
            }
            _ => false,
        }
    }

    /// CHECKING_RSTP: send RST BPDUs (if the bridge runs RSTP) for at least MigrateTime.
    fn checking_rstp(&mut self, i: usize) {
        let now = self.now;
        let rstp = self.rstp_version();
        let migrate = secs(self.cfg.migrate_time);
        let p = &mut self.ports[i];
        p.ppm = Ppm::CheckingRstp;
        p.mcheck = false;
        p.send_rstp = rstp;
        p.mdelay_while.set(now, migrate);
    }

    /// SENSING: listen for what the neighbour speaks from now on.
    fn sensing(&mut self, i: usize) -> bool {
        let p = &mut self.ports[i];
        p.ppm = Ppm::Sensing;
        p.rcvd_rstp = false;
        p.rcvd_stp = false;
        true
    }
}
