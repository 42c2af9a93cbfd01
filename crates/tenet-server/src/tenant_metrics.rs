//! The per-tenant families of `/metrics` that are more than one counter
//! per tenant, from each tenant's tally (read at scrape time; the decision
//! path only bumps atomics): decisions by outcome, the active revision,
//! and a decision latency histogram. (The tally's plain counters are
//! metrics.rs's, with the other per-tenant counters.) Tenants without their own series
//! (label_cap.rs) are added up under `tenant="__other__"`. Encoding only.

use crate::label_cap::{label, OTHER};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::collections::{BTreeMap, HashSet};
use tenet::TenantCounters;

/// A histogram already counted: buckets (upper bound in seconds, count,
/// not cumulative), sum and count.
struct Counted {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl EncodeMetric for Counted {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn bounds() -> Vec<f64> {
    tenet::LATENCY_BOUNDS_US
        .iter()
        .map(|us| *us as f64 / 1e6)
        .chain([f64::INFINITY])
        .collect()
}

/// Encodes the families for `tenants`; `members` keep their own label.
pub(crate) fn encode(
    e: &mut DescriptorEncoder,
    tenants: &[TenantCounters],
    members: &HashSet<String>,
) -> Result<(), std::fmt::Error> {
    // Decisions by outcome: errors are the decisions that failed.
    {
        const OUTCOMES: [&str; 5] = ["allow", "deny", "defined", "undefined", "error"];
        let mut by: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        // Most tenants fold into `__other__`: summed apart, out of the map.
        let mut other: Option<[u64; 5]> = None;
        for t in tenants {
            let s = &t.tally;
            let counts = [s.allow, s.deny, s.defined, s.undefined, t.decision_errors];
            if members.contains(&*t.tenant) {
                for (outcome, n) in OUTCOMES.into_iter().zip(counts) {
                    *by.entry((&*t.tenant, outcome)).or_default() += n;
                }
            } else {
                let sum = other.get_or_insert([0; 5]);
                for (slot, n) in sum.iter_mut().zip(counts) {
                    *slot += n;
                }
            }
        }
        if let Some(sum) = other {
            for (outcome, n) in OUTCOMES.into_iter().zip(sum) {
                by.insert((OTHER, outcome), n);
            }
        }
        let mut m = e.encode_descriptor(
            "tenet_tenant_decisions",
            "Decisions per tenant by outcome: allow/deny for boolean results, defined for others, undefined, error",
            None,
            MetricType::Counter,
        )?;
        for ((tenant, outcome), n) in by {
            let labels = [("tenant", tenant), ("outcome", outcome)];
            ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
        }
    }
    // The active revision of each tenant with its own series.
    {
        let mut m = e.encode_descriptor(
            "tenet_tenant_revision_info",
            "The active revision of each tenant that has its own series (value 1)",
            None,
            MetricType::Gauge,
        )?;
        for t in tenants.iter().filter(|t| members.contains(&*t.tenant)) {
            if let Some(revision) = &t.revision {
                let labels = [("tenant", &*t.tenant), ("revision", &**revision)];
                ConstGauge::new(1).encode(m.encode_family(&labels)?)?;
            }
        }
    }
    // Decision latency.
    {
        let bounds = bounds();
        let mut by: BTreeMap<&str, Counted> = BTreeMap::new();
        for t in tenants {
            let h = by
                .entry(label(members, &t.tenant))
                .or_insert_with(|| Counted {
                    buckets: bounds.iter().map(|b| (*b, 0)).collect(),
                    sum: 0.0,
                    count: 0,
                });
            for (slot, n) in h.buckets.iter_mut().zip(&t.tally.latency_buckets) {
                slot.1 += n;
                h.count += n;
            }
            h.sum += t.tally.latency_sum.as_secs_f64();
        }
        let mut m = e.encode_descriptor(
            "tenet_tenant_decision_duration",
            "Time to decide (cache, evaluation or worker), per tenant",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (tenant, h) in by {
            h.encode(m.encode_family(&[("tenant", tenant)])?)?;
        }
    }
    Ok(())
}
