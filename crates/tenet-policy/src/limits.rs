//! Per-tenant evaluation limits: how long one decision may run and how big
//! its input, its builtin results, its result and its `print` output may
//! be. Numbers only; enforcement lives in `input`, `output` and in regorus
//! itself (`policy` hands it the deadline, the instruction cap and the
//! builtin bounds).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits applied to every evaluation of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalLimits {
    /// Wall-clock deadline of one evaluation. Default 1 s.
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// How many interpreter/VM steps pass between deadline checks; lower is
    /// more precise and slower. Default 64.
    pub deadline_check_interval: u32,
    /// Most instructions one VM execution may run. Default 10,000,000
    /// (regorus's own default of 25,000 is hit by ordinary policies over data).
    pub max_instructions: usize,
    /// Largest input document: its text, and what it parses to, measured
    /// as one per value plus the bytes of every string and key (YAML
    /// aliases expanded; a JSON text never measures more than its length).
    /// Default 10 MiB.
    pub max_input_bytes: usize,
    /// Deepest nesting of the input document. Default 64.
    pub max_input_depth: usize,
    /// Most elements a builtin may create in one call (`numbers.range`,
    /// `net.cidr_expand`, `split`, `graph.reachable_paths`, the nodes of a
    /// `yaml.unmarshal`). Default 1,000,000.
    pub max_builtin_elements: u64,
    /// Largest string a builtin may build in one call (`sprintf`, `concat`,
    /// `replace`, `json.marshal`). Default 16 MiB.
    pub max_builtin_string_bytes: u64,
    /// Most memory one evaluation may hold: the bytes it adds to its
    /// thread's live bytes, as counted by regorus's allocator, checked where
    /// the deadline is checked; builtins refuse a value sized from their
    /// arguments that would not fit in what is left. 0 turns it off.
    /// Default 256 MiB.
    pub max_memory_bytes: u64,
    /// Largest result one evaluation may return, measured like inputs
    /// (one per value plus string and key bytes), counting a shared value
    /// each time it appears, as it would be serialised: a result holding
    /// 1,000 references to one 16 MiB string measures 16 GiB and is refused
    /// before it is converted or written. Default 64 MiB.
    pub max_result_bytes: u64,
    /// Most bytes of `print` output kept from one evaluation; the rest is
    /// dropped and the last line kept ends with a truncation marker.
    /// Default 1 MiB.
    pub max_print_bytes: usize,
}

impl Default for EvalLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(1),
            deadline_check_interval: 64,
            max_instructions: 10_000_000,
            max_input_bytes: 10 << 20,
            max_input_depth: 64,
            max_builtin_elements: 1_000_000,
            max_builtin_string_bytes: 16 << 20,
            max_memory_bytes: 256 << 20,
            max_result_bytes: 64 << 20,
            max_print_bytes: 1 << 20,
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
