//! Domain types and validation: rooms, connections, jobs, the frames clients see, the rooms a
//! token grants, and rooms' sequences and history.
//! Pure data and pure functions; nothing here does I/O.

pub mod allowance;
pub mod connection;
pub mod frame;
pub mod grants;
pub mod history;
pub mod job;
pub mod message;
pub mod progress;
pub mod publish;
pub mod room;
pub mod time;

pub use allowance::{Allowance, RateLimit};
pub use connection::{Connection, Membership};
pub use frame::{ErrorCode, Frame};
pub use grants::{Grant, InvalidGrants, RoomGrants};
pub use history::{HistoryEntry, Position, Recover, RecoverRequest, Recovery};
pub use job::{DeliveryMode, Job, Segment, Target};
pub use message::{ClientError, Outgoing, RoomAction, parse_room_action, parse_send_message};
pub use progress::{Checkpoint, Handoff, Rest, Retries, Split};
pub use publish::{IdempotencyKey, PublishRequest, Published, parse_publish};
pub use room::{InvalidRoom, RoomName};
pub use time::{epoch_millis, now_epoch_millis};
