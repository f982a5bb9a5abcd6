//! Checks of a bridge's and its ports' parameters against the ranges of 802.1D-2004
//! (17.13, 17.14, Table 17-1 and 17-3), so a bad config is refused with the field named
//! instead of running a tree that never converges.

use super::{BridgeConfig, PortConfig};

/// The first parameter out of range, as "field: reason".
pub fn validate(cfg: &BridgeConfig, ports: &[PortConfig]) -> Result<(), String> {
    let range = |name: &str, v: u32, lo: u32, hi: u32| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(format!("{name}: {v} is outside {lo}..={hi}"))
        }
    };
    range("hello_time", cfg.hello_time.into(), 1, 10)?;
    range("max_age", cfg.max_age.into(), 6, 40)?;
    range("forward_delay", cfg.forward_delay.into(), 4, 30)?;
    range("tx_hold_count", cfg.tx_hold_count.into(), 1, 10)?;
    range("migrate_time", cfg.migrate_time.into(), 1, 10)?;
    if cfg.force_version != 0 && cfg.force_version != 2 {
        return Err(format!(
            "force_version: {} is neither 0 (STP) nor 2 (RSTP)",
            cfg.force_version
        ));
    }
    // 17.14: 2 x (Forward Delay - 1) >= Max Age >= 2 x (Hello Time + 1).
    if 2 * (cfg.forward_delay - 1) < cfg.max_age || cfg.max_age < 2 * (cfg.hello_time + 1) {
        return Err(format!(
            "max_age: {} breaks 2 x (forward_delay - 1) >= max_age >= 2 x (hello_time + 1) \
             with forward_delay {} and hello_time {}",
            cfg.max_age, cfg.forward_delay, cfg.hello_time
        ));
    }
    for (k, p) in ports.iter().enumerate() {
        let field = |f: &str| format!("port {}: {f}", p.number);
        range(&field("number"), p.number.into(), 1, 4095)?;
        if ports[..k].iter().any(|q| q.number == p.number) {
            return Err(format!("{}: used twice", field("number")));
        }
        if p.priority > 240 || p.priority % 16 != 0 {
            return Err(format!(
                "{}: {} is not a multiple of 16 in 0..=240",
                field("priority"),
                p.priority
            ));
        }
        range(&field("path_cost"), p.path_cost, 1, 200_000_000)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::super::types::BridgeId;
    use super::*;

    #[test]
    fn refuses_out_of_range_parameters_naming_the_field() {
        let mut cfg = BridgeConfig::new(BridgeId::default());
        let ports = [PortConfig::new(1, 100), PortConfig::new(2, 100)];
        assert_eq!(validate(&cfg, &ports), Ok(()));
        cfg.hello_time = 1;
        cfg.max_age = 6;
        cfg.forward_delay = 4;
        assert_eq!(validate(&cfg, &ports), Ok(()), "the lab's timers");
        cfg.max_age = 7;
        assert!(validate(&cfg, &ports)
            .unwrap_err()
            .starts_with("max_age: 7 breaks"));
        cfg.max_age = 6;
        cfg.hello_time = 0;
        assert_eq!(
            validate(&cfg, &ports).unwrap_err(),
            "hello_time: 0 is outside 1..=10"
        );
        cfg.hello_time = 1;
        let mut bad = ports;
        bad[1].number = 1;
        assert_eq!(
            validate(&cfg, &bad).unwrap_err(),
            "port 1: number: used twice"
        );
        let mut bad = ports;
        bad[0].priority = 100;
        assert_eq!(
            validate(&cfg, &bad).unwrap_err(),
            "port 1: priority: 100 is not a multiple of 16 in 0..=240"
        );
        let mut bad = ports;
        bad[1].path_cost = 0;
        assert_eq!(
            validate(&cfg, &bad).unwrap_err(),
            "port 2: path_cost: 0 is outside 1..=200000000"
        );
    }
}
