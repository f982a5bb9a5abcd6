//! Port State Transition (17.30): learn and forward, as Port Role Transitions asks, become
//! the port's state; each change is an [`Action::SetState`] for the daemon.
//!
//! A port that stops forwarding is flushed at once (after its state change, so nothing is
//! relearned on it): the lesson from Open vSwitch is that a MAC kept on a port that
//! no longer forwards blackholes traffic until the next flush.

use super::{Action, Bridge, PortState};

impl Bridge {
    /// One transition of port `i`'s Port State Transition machine; true if it moved.
    pub(super) fn step_state_tx(&mut self, i: usize) -> bool {
        let p = &self.ports[i];
        let next = match p.pst {
            PortState::Discarding if p.learn => PortState::Learning,
            PortState::Learning if p.forward => PortState::Forwarding,
            PortState::Learning if !p.learn => PortState::Discarding,
            PortState::Forwarding if !p.forward => PortState::Discarding,
            _ => return false,
        };
        let was_forwarding = p.pst == PortState::Forwarding;
        let port = p.cfg.number;
        let p = &mut self.ports[i];
        p.pst = next;
        p.learning = next != PortState::Discarding;
        p.forwarding = next == PortState::Forwarding;
        self.out.push(Action::SetState { port, state: next });
        if was_forwarding {
            self.flush(i);
        }
        true
    }

    /// Flushes port `i`'s learned MACs (fdbFlush, 17.19.7, acted on at once); one flush per
    /// port per event is enough.
    pub(super) fn flush(&mut self, i: usize) {
        let port = self.ports[i].cfg.number;
        self.ports[i].fdb_flush = false;
        let last_state = self
            .out
            .iter()
            .rposition(|a| matches!(a, Action::SetState { port: p, .. } if *p == port));
        let last_flush = self.out.iter().rposition(|a| *a == Action::Flush { port });
        // A flush already after this port's last state change still holds.
        if last_flush.is_some() && last_flush >= last_state {
            return;
        }
        self.out.push(Action::Flush { port });
    }
}
