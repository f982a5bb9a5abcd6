//! `lbctl graph`: the lab's topology drawn from the config and the live state — hosts as
//! clusters, both LANs, every link, STP-blocked ports as cut links, the root bridge, the
//! VRRP master holding the VIP, backends coloured by each balancer's health view, and the
//! VXLAN tunnel. The agent's dashboard shows the same picture.
#![forbid(unsafe_code)]

mod build;
pub mod dot;
pub mod model;
pub mod render;

use crate::config::Config;
use anyhow::Result;
pub use model::Model;

/// The picture in every form: the model (JSON for the dashboard), DOT and SVG.
#[derive(Debug, serde::Serialize)]
pub struct Picture {
    pub model: Model,
    pub dot: String,
    pub svg: Option<String>,
}

/// Builds the picture; with `live`, from the running lab's status.
pub async fn picture(cfg: &Config, live: bool, want_svg: bool) -> Result<Picture> {
    let status = if live {
        Some(crate::status::collect(cfg).await?)
    } else {
        None
    };
    let model = Model::build(cfg, status.as_ref());
    let dot = dot::to_dot(&model);
    let svg = if want_svg {
        Some(render::svg(&dot)?)
    } else {
        None
    };
    Ok(Picture { model, dot, svg })
}
