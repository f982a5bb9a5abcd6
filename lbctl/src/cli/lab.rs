//! Which lab a verb acts on: `-c FILE` and `--lab NAME`, resolved against the labs running.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::config::{self, Config};
use crate::topo::{self, netns};

#[derive(clap::Args, Clone, Default)]
pub struct LabArgs {
    /// Config file (default: the built-in scenario, configs/default.toml).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Lab name (namespace prefix lbctl-NAME-); default: the config's, or the only lab running.
    #[arg(long)]
    pub lab: Option<String>,
}

impl LabArgs {
    /// Only a lab name (the verbs that act on a running lab and take no config).
    pub fn named(lab: Option<String>) -> LabArgs {
        LabArgs { config: None, lab }
    }

    /// The config of a running lab: `-c FILE`, else the lab's saved config, else the
    /// built-in scenario; `--lab` overrides the name. Returns the config and its text.
    pub fn resolve(&self) -> Result<(Config, String)> {
        self.resolve_for(false)
    }

    /// The config `up` builds: like [`LabArgs::resolve`], but a running lab's saved config
    /// is never reused (a new lab is built from `-c` or the built-in scenario).
    pub fn resolve_for_up(&self) -> Result<(Config, String)> {
        self.resolve_for(true)
    }

    fn resolve_for(&self, for_up: bool) -> Result<(Config, String)> {
        if let Some(p) = &self.config {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let mut cfg = Config::from_toml(&text, &p.display().to_string())?;
            if let Some(l) = &self.lab {
                cfg = cfg.with_lab_name(l)?;
            }
            return Ok((cfg, text));
        }
        let lab = match &self.lab {
            Some(l) => Some(l.clone()),
            None if !for_up => only_running_lab()?,
            None => None,
        };
        if let (Some(l), false) = (&lab, for_up) {
            if let Some(text) = topo::state::load_config_text(l) {
                let origin = topo::state::run_dir(l).join("config.toml");
                let cfg =
                    Config::from_toml(&text, &origin.display().to_string())?.with_lab_name(l)?;
                return Ok((cfg, text));
            }
        }
        let mut cfg = Config::default_scenario();
        if let Some(l) = &lab {
            cfg = cfg.with_lab_name(l)?;
        }
        Ok((cfg, config::DEFAULT_TOML.to_string()))
    }
}

/// The lab running when there is exactly one; an error naming them when there are several.
fn only_running_lab() -> Result<Option<String>> {
    let labs = topo::state::labs();
    match labs.len() {
        0 => Ok(None),
        1 => Ok(Some(labs[0].clone())),
        _ => bail!(
            "several labs are up ({}); choose one with --lab",
            labs.join(", ")
        ),
    }
}

/// The running node's namespace, or an error listing the lab's nodes.
pub fn node_ns(cfg: &Config, node: &str) -> Result<String> {
    let ns = config::netns_name(&cfg.lab.name, node);
    if !netns::exists(&ns) {
        let plan = topo::plan::Plan::new(cfg);
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "no node {node:?} running in lab {:?} (nodes: {})",
            cfg.lab.name,
            names.join(", ")
        );
    }
    Ok(ns)
}
