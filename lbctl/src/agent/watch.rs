//! The agent's own supervision: the background tasks it cannot run without (the VRRP
//! instance, the health tracker that steers the VRRP priority, one health-check task per
//! backend). If one of them ends (returns or panics), the agent must not go on looking
//! alive: a VRRP task that died leaves the VIP on a node that no longer advertises, a
//! dead health check freezes a backend's state. The agent then resigns and exits
//! non-zero, and `up`'s supervisor restarts it (see `topo::daemons::supervise`).
#![forbid(unsafe_code)]

use std::time::Duration;

use tokio::task::JoinHandle;

/// How often the tasks are looked at (a death is acted on within this).
const POLL: Duration = Duration::from_millis(50);

/// The tasks the agent cannot run without, by name.
#[derive(Default)]
pub struct Watched {
    vrrp: Option<JoinHandle<anyhow::Result<()>>>,
    others: Vec<(String, JoinHandle<()>)>,
}

impl Watched {
    pub fn vrrp(&mut self, task: JoinHandle<anyhow::Result<()>>) {
        self.vrrp = Some(task);
    }

    pub fn add(&mut self, name: impl Into<String>, task: JoinHandle<()>) {
        self.others.push((name.into(), task));
    }

    /// Waits until one task ends; says which and how ("the VRRP task panicked: …").
    pub async fn first_death(&mut self) -> String {
        loop {
            if let Some(t) = self.vrrp.as_mut().filter(|t| t.is_finished()) {
                let how = match t.await {
                    Ok(Ok(())) => "returned".to_string(),
                    Ok(Err(e)) => format!("failed: {e:#}"),
                    Err(e) => ended(e),
                };
                self.vrrp = None;
                return format!("the VRRP task {how}");
            }
            if let Some(i) = self.others.iter().position(|(_, t)| t.is_finished()) {
                let (name, t) = self.others.swap_remove(i);
                let how = match t.await {
                    Ok(()) => "returned".to_string(),
                    Err(e) => ended(e),
                };
                return format!("the {name} task {how}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops every task still running (the agent is exiting).
    pub fn abort_all(&self) {
        if let Some(t) = &self.vrrp {
            t.abort();
        }
        for (_, t) in &self.others {
            t.abort();
        }
    }
}

fn ended(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let p = e.into_panic();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("panicked: {msg}")
    } else {
        "was cancelled".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_the_task_that_died_and_how() {
        let mut w = Watched::default();
        w.add("health check (serv1)", tokio::spawn(std::future::pending()));
        w.add(
            "health check (serv2)",
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                panic!("boom");
            }),
        );
        w.vrrp(tokio::spawn(std::future::pending()));
        let why = tokio::time::timeout(Duration::from_secs(5), w.first_death())
            .await
            .expect("a death is seen");
        assert_eq!(why, "the health check (serv2) task panicked: boom");
        w.abort_all();

        let mut w = Watched::default();
        w.add("health tracker", tokio::spawn(std::future::pending()));
        w.vrrp(tokio::spawn(async { anyhow::bail!("socket closed") }));
        assert_eq!(w.first_death().await, "the VRRP task failed: socket closed");
    }
}
