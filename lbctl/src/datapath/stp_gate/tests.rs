//! Tests of the gate: BPF_PROG_TEST_RUN of lb_obs/lb_gate and a namespace ping test.
