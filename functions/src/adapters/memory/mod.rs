//! In-memory adapters: first-class implementations used by tests, benchmarks and the local
//! stack's embedded default.

mod gateway;
mod queue;
mod store;

pub use gateway::{GatewayBehaviour, MemoryGateway};
pub use queue::MemoryQueue;
pub use store::MemoryStore;
