//! Bridge Detection (17.25): whether a port is an edge port (no bridge behind it, so it
//! forwards at once and is left alone by topology changes). AdminEdge sets it; AutoEdge
//! sets it when a designated port's proposal goes unanswered for the edge delay; any BPDU
//! received clears it (Port Receive, [`super::Bridge::receive`]).

use super::Bridge;

impl Bridge {
    /// One transition of port `i`'s Bridge Detection machine (EDGE / NOT_EDGE); true if it
    /// moved.
    pub(super) fn step_bridge_detect(&mut self, i: usize) -> bool {
        let now = self.now;
        let p = &mut self.ports[i];
        let edge = if p.oper_edge {
            !(!p.enabled && !p.cfg.admin_edge)
        } else {
            !p.enabled && p.cfg.admin_edge
                || p.edge_delay_while.is_zero(now) && p.cfg.auto_edge && p.send_rstp && p.proposing
        };
        if edge == p.oper_edge {
            return false;
        }
        p.oper_edge = edge;
        true
    }
}
