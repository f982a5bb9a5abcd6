//! The clause-17 state machines of one RSTP bridge. Written on branch `rstp-fsm`.
