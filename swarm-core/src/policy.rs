//! Who does the work: the model roles ([`Tier`]), the delegation target and
//! the worker/coordinator split of spend ([`Efficiency`], in [`Percent`]),
//! shared by the runtime's delegation statistics and status block
//! (`swarmbus-agents`) and the cost report (`swarmbus-cost`), which meet only
//! through core. The policy itself lives in `swarmbus-agents`.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::keys::TierName;

/// The brief's target share of work on the worker tier, in tenths of a
/// percent (90 %).
pub const WORKER_TARGET_PERMILLE: u32 = 900;

/// The role of a model in the swarm. The model ids behind the tiers are
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Tier {
    /// The expensive strategic model (the brief's Sonnet).
    Coordinator,
    /// The cheap model doing ~90 % of the work (the brief's Haiku).
    Worker,
    /// The archive model (the brief's Gemini Flash).
    Librarian,
}

impl Tier {
    /// The brief's default tier name for this role (`sonnet`, `haiku`, `gemini`).
    pub fn default_name(self) -> TierName {
        let name = match self {
            Tier::Coordinator => "sonnet",
            Tier::Worker => "haiku",
            Tier::Librarian => "gemini",
        };
        TierName::from_trusted(name)
    }
}

/// A share in tenths of a percent, shown with one decimal (`66.7`) and
/// serialized as that string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Percent {
    /// A share in tenths of a percent (clamped to 1000).
    pub const fn from_permille(permille: u32) -> Self {
        Self(if permille > 1000 { 1000 } else { permille })
    }

    /// The share in tenths of a percent.
    pub const fn permille(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The worker/coordinator split of spend, as the brief computes it: one
/// type for `swarm status` and the cost report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Efficiency {
    /// The worker tier's share of worker + coordinator spend (0 when nothing
    /// was spent, as in the brief).
    pub worker: Percent,
    /// The rest (100 when nothing was spent).
    pub coordinator: Percent,
}

impl Efficiency {
    /// The brief's formula over float dollars (`cost:<tier>`).
    pub fn from_costs(coordinator: f64, worker: f64) -> Self {
        let total = coordinator + worker;
        let spent = total > 0.0 && total.is_finite();
        let share = if spent { worker / total } else { 0.0 };
        // Rounded to tenths of a percent; a NaN or negative share is 0.
        let permille = (share * 1000.0).round().clamp(0.0, 1000.0);
        Self::from_permille(permille as u32, spent)
    }

    /// From the worker share in tenths of a percent; `spent` is false when
    /// nothing was spent (worker 0 %, coordinator 100 %).
    pub fn from_permille(worker_permille: u32, spent: bool) -> Self {
        let worker = Percent::from_permille(if spent { worker_permille } else { 0 });
        Self {
            worker,
            coordinator: Percent::from_permille(1000 - worker.permille()),
        }
    }
}
