//! Progress lines for long operations: rewritten in place on a terminal, and at most one
//! line per second (when something changed) in logs, so CI output stays readable.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    tty: bool,
    last_line: String,
    last_print: Option<Instant>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            last_line: String::new(),
            last_print: None,
        }
    }

    /// Shows `msg` as the current state of the operation.
    pub fn update(&mut self, msg: &str) {
        if !self.enabled {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[2K{msg}");
            let _ = std::io::stderr().flush();
        } else {
            let due = self
                .last_print
                .map(|t| t.elapsed() >= Duration::from_secs(1))
                .unwrap_or(true);
            if due && msg != self.last_line {
                eprintln!("{msg}");
                self.last_print = Some(Instant::now());
                self.last_line = msg.to_string();
            }
        }
    }

    /// Ends the operation with a final line.
    pub fn done(&mut self, msg: &str) {
        if !self.enabled {
            return;
        }
        if self.tty {
            eprintln!("\r\x1b[2K{msg}");
        } else {
            eprintln!("{msg}");
        }
    }
}
