//! `lbctl graph`: draws the lab, live when it runs, from the config alone otherwise.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ValueEnum;

use super::LabArgs;
use crate::graph::{self, Picture};
use crate::topo::{netns, plan::Plan, state};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Svg,
    Dot,
    Json,
}

impl Format {
    /// The format a file name's extension names (SVG when it names none we know).
    fn of(path: Option<&Path>) -> Format {
        match path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
            Some("dot") | Some("gv") => Format::Dot,
            Some("json") => Format::Json,
            _ => Format::Svg,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// Output file; the format follows the extension (.svg, .dot, .json). Default: SVG
    /// on stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Output format (overrides the extension).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

pub async fn run(a: Args) -> Result<()> {
    let (cfg, _) = a.lab.resolve()?;
    // Live state when this lab runs (reading it needs root); the config alone otherwise.
    let live = state::labs().contains(&cfg.lab.name)
        && Plan::new(&cfg)
            .nodes
            .iter()
            .any(|n| netns::exists(&n.netns));
    if live {
        netns::require_root()?;
    }
    let format = a.format.unwrap_or_else(|| Format::of(a.output.as_deref()));
    let pic = graph::picture(&cfg, live, format != Format::Dot).await?;
    let text = match format {
        Format::Svg => pic.svg.clone().unwrap_or_default(),
        Format::Dot => pic.dot.clone(),
        Format::Json => serde_json::to_string(&pic)?,
    };
    match a.output {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("{} ({}): {}", p.display(), live_word(live), summary(&pic));
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn live_word(live: bool) -> &'static str {
    if live {
        "live"
    } else {
        "config only"
    }
}

/// One line about what the picture shows: sizes, blocked ports, roots, VRRP masters.
fn summary(pic: &Picture) -> String {
    let m = &pic.model;
    let or_none = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let roots: Vec<String> = m
        .roots
        .iter()
        .map(|(l, r)| format!("{l}: {}", r.join("/")))
        .collect();
    format!(
        "{} nodes, {} edges, blocked: {}, root: {}, VRRP master: {}",
        m.nodes.len(),
        m.edges.len(),
        or_none(&m.blocked),
        roots.join(", "),
        or_none(&m.masters)
    )
}
