//! `lbctl probe`: a bounded client loop printing failed requests and the outage as JSON.

use std::time::Duration;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 50)]
    period_ms: u64,
    /// Deadline of each request.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 10000)]
    duration_ms: u64,
}

pub fn run(a: Args) -> Result<()> {
    let r = crate::probe::run(
        &a.url,
        Duration::from_millis(a.period_ms),
        Duration::from_millis(a.timeout_ms),
        Duration::from_millis(a.duration_ms),
    )?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
