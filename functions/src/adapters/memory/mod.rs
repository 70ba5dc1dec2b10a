//! In-memory adapters: first-class implementations used by tests, benchmarks and the local
//! stack's embedded default.

mod gateway;
mod history;
mod progress;
mod publish_log;
mod queue;
mod store;

pub use gateway::{GatewayBehaviour, MemoryGateway};
pub use history::MemoryHistory;
pub use progress::MemoryProgress;
pub use publish_log::MemoryPublishLog;
pub use queue::{DeadLetter, MemoryQueue};
pub use store::MemoryStore;
