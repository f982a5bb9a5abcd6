//! `lbctl verify`: proves the scenario's four checkpoints on the running lab.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::LabArgs;
use crate::config::Config;
use crate::topo::{netns, plan::Plan};
use crate::verify;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// JSON report on stdout (schema 2, see the README).
    #[arg(long)]
    json: bool,
    /// Also draw the outage timeline (one row per event and client) as SVG into FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Also write a self-contained HTML page (the timeline and the tables) into FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Run nothing: read a saved `--json` report and print or draw it (exit 0 once drawn).
    #[arg(long, value_name = "REPORT", conflicts_with_all = ["only", "scenario"])]
    from_json: Option<PathBuf>,
    /// Run only this checkpoint (1 STP, 2 VRRP, 3 balancers, 4 VXLAN); repeatable.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    only: Vec<u8>,
    /// Period of the client loops that measure outages.
    #[arg(long, default_value_t = 50)]
    period_ms: u64,
    /// Deadline of each request of the client loops.
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
    /// The scenario whose STP tree the lab must have (default: the built-in one, checked
    /// only on a lab with its STP bridges).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// At most N of checkpoint 1's failure events: every STP bridge first (root first),
    /// then links covering each bridge in turn; the report lists the ones left out.
    #[arg(long, value_name = "N")]
    max_events: Option<usize>,
    /// Print what would be verified on this lab (derived from its config) and exit.
    #[arg(long, conflicts_with_all = ["from_json", "json", "svg", "html"])]
    plan: bool,
}

/// Prints the report (text, or JSON with `--json`) and writes the pictures asked for.
fn output(a: &Args, r: &verify::report::Report) -> Result<()> {
    if a.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        print!("{}", verify::report::render(r));
    }
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    if let Some(p) = &a.svg {
        write(p, verify::draw::svg(r))?;
    }
    if let Some(p) = &a.html {
        write(p, verify::draw::html(r))?;
    }
    Ok(())
}

pub async fn run(a: Args) -> Result<()> {
    if let Some(path) = &a.from_json {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the report {}", path.display()))?;
        let r = verify::report::load(&text).with_context(|| format!("{}", path.display()))?;
        return output(&a, &r);
    }
    if a.plan {
        let (cfg, _) = a.lab.resolve()?;
        let reference = a.scenario.as_deref().map(Config::load).transpose()?;
        let explicit = reference.is_some();
        let reference = reference.unwrap_or_else(Config::default_scenario);
        for l in verify::derive::summary(&cfg, &reference, explicit, a.max_events) {
            println!("{l}");
        }
        return Ok(());
    }
    netns::require_root()?;
    let (cfg, _) = a.lab.resolve()?;
    cfg.require_lab("verify")?;
    let plan = Plan::new(&cfg);
    if let Some(missing) = plan.nodes.iter().find(|n| !netns::exists(&n.netns)) {
        bail!(
            "lab {:?} is not running (no namespace {}): start it with lbctl up",
            cfg.lab.name,
            missing.netns
        );
    }
    let reference = a.scenario.as_deref().map(Config::load).transpose()?;
    let mut only = a.only.clone();
    only.sort();
    only.dedup();
    let opts = verify::Options {
        only,
        period: Duration::from_millis(a.period_ms),
        deadline: Duration::from_millis(a.timeout_ms),
        reference,
        max_events: a.max_events,
    };
    let r = verify::run(cfg, opts).await?;
    output(&a, &r)?;
    if r.interrupted {
        std::process::exit(130);
    }
    if !r.passed {
        std::process::exit(1);
    }
    Ok(())
}
