//! Roles are configuration: which tier name and model stand for the
//! coordinator, the workers and the librarians, and the worker-share target.

use swarmbus_core::Tier;
use swarmbus_core::keys::TierName;

use crate::defaults::{COORDINATOR_MODEL, LIBRARIAN_MODEL, WORKER_MODEL};
use crate::ledger::Call;
use crate::pricing::Billing;

/// The tier name, model and billing of one role.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierModel {
    /// The name in `cost:<tier>` and reports (`haiku`).
    pub name: TierName,
    /// The model id its calls go to.
    pub model: String,
    /// How its calls are billed.
    pub billing: Billing,
}

impl TierModel {
    /// A tier on standard billing.
    pub fn new(name: TierName, model: impl Into<String>) -> Self {
        Self {
            name,
            model: model.into(),
            billing: Billing::Standard,
        }
    }

    /// Sets the billing mode.
    pub fn billing(mut self, billing: Billing) -> Self {
        self.billing = billing;
        self
    }
}

/// The swarm's three roles. The default keeps the brief's tier names with
/// today's models ([`crate::defaults`]): Claude Sonnet 5.5 coordinates
/// (`sonnet`), Claude Haiku 5.5 works (`haiku`), Gemini 3.5 Flash-Lite on its
/// free tier is the librarian (`gemini`); target 90 % of the work on
/// workers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tiers {
    /// The coordinator role.
    pub coordinator: TierModel,
    /// The worker role.
    pub worker: TierModel,
    /// The librarian role.
    pub librarian: TierModel,
    /// The target share of calls on workers, in tenths of a percent (900).
    pub worker_target_permille: u32,
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            coordinator: TierModel::new(Tier::Coordinator.default_name(), COORDINATOR_MODEL),
            worker: TierModel::new(Tier::Worker.default_name(), WORKER_MODEL),
            librarian: TierModel::new(Tier::Librarian.default_name(), LIBRARIAN_MODEL)
                .billing(Billing::FreeTier),
            worker_target_permille: swarmbus_core::policy::WORKER_TARGET_PERMILLE,
        }
    }
}

impl Tiers {
    /// Three roles, target 90 %.
    pub fn new(coordinator: TierModel, worker: TierModel, librarian: TierModel) -> Self {
        Self {
            coordinator,
            worker,
            librarian,
            worker_target_permille: swarmbus_core::policy::WORKER_TARGET_PERMILLE,
        }
    }

    /// Sets the worker-share target, in tenths of a percent (clamped to 1000).
    pub fn worker_target_permille(mut self, permille: u32) -> Self {
        self.worker_target_permille = permille.min(1000);
        self
    }

    /// The configuration of a role (`None` for a role this crate does not
    /// know yet).
    pub fn get(&self, role: Tier) -> Option<&TierModel> {
        match role {
            Tier::Coordinator => Some(&self.coordinator),
            Tier::Worker => Some(&self.worker),
            Tier::Librarian => Some(&self.librarian),
            _ => None,
        }
    }

    /// The role whose tier is named `name`.
    pub fn role_of(&self, name: &TierName) -> Option<Tier> {
        [Tier::Coordinator, Tier::Worker, Tier::Librarian]
            .into_iter()
            .find(|role| self.get(*role).is_some_and(|t| &t.name == name))
    }

    /// A call of `role` with its tier, model and billing, made now.
    pub fn call(&self, role: Tier) -> Option<Call> {
        self.get(role).map(|t| {
            Call::new(t.name.clone(), t.model.clone())
                .role(role)
                .billing(t.billing)
        })
    }
}
