//! What the in-memory queue holds ready to be received, and in which order: one line on a
//! standard queue; on a FIFO queue (`--ordering per_room`, as SQS FIFO) message groups, a room
//! each, whose messages are given out in the order they were sent, none of a group while one of
//! it is in flight, other groups going on meanwhile. And the FIFO queue's deduplication: a
//! message sent again within five minutes is taken once.

use super::message::{Message, Order};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// SQS FIFO's deduplication interval: a message with the deduplication id of one sent this
/// recently is accepted and not queued again.
pub const DEDUPLICATION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The messages ready to be received (visible, not delayed, not in flight), in their order; on
/// a FIFO queue, some of them wait behind a message of their group in flight.
pub enum Ready {
    /// A standard queue: first in, first out; one that comes back joins the end.
    Line(VecDeque<Message>),
    /// A FIFO queue.
    Groups(Groups),
}

impl Ready {
    pub fn new(fifo: bool) -> Self {
        if fifo {
            Self::Groups(Groups::default())
        } else {
            Self::Line(VecDeque::new())
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Line(line) => line.len(),
            Self::Groups(groups) => groups.waiting,
        }
    }

    pub fn messages(&self) -> Box<dyn Iterator<Item = &Message> + '_> {
        match self {
            Self::Line(line) => Box::new(line.iter()),
            Self::Groups(groups) => Box::new(
                groups
                    .groups
                    .values()
                    .flat_map(|group| group.waiting.values()),
            ),
        }
    }

    /// A message sent now: at the end of the line, or of its group.
    pub fn push(&mut self, message: Message) {
        match self {
            Self::Line(line) => line.push_back(message),
            Self::Groups(groups) => groups.insert(message),
        }
    }

    /// A message in flight whose visibility ended: at the end of the line; in its group, back
    /// in its place, before every message sent after it (SQS FIFO redelivers a group in order).
    pub fn put_back(&mut self, message: Message) {
        match self {
            Self::Line(line) => line.push_back(message),
            Self::Groups(groups) => {
                groups.settle(&message);
                groups.insert(message);
            }
        }
    }

    /// Takes the next message to receive out. One receive calls it until it has its batch,
    /// with the same `current`, where a FIFO queue keeps the group it is taking from: as SQS,
    /// it gives as many messages of one group as it has (in order), then goes on to the group
    /// whose first message is the oldest, skipping groups with a message in flight. The caller
    /// then [`received`](Self::received) or [`parked`](Self::parked) it.
    pub fn pop(&mut self, current: &mut Option<String>) -> Option<Message> {
        match self {
            Self::Line(line) => line.pop_front(),
            Self::Groups(groups) => groups.pop(current),
        }
    }

    /// A message [`pop`](Self::pop)ped is in flight: its group gives nothing more out until it
    /// is deleted, parked or visible again.
    pub fn received(&mut self, message: &Message) {
        if let (Self::Groups(groups), Some(order)) = (self, &message.order) {
            groups
                .groups
                .entry(order.group.clone())
                .or_default()
                .in_flight += 1;
        }
    }

    /// A message in flight was deleted.
    pub fn deleted(&mut self, message: &Message) {
        if let Self::Groups(groups) = self {
            groups.settle(message);
        }
    }

    /// A message [`pop`](Self::pop)ped went to the dead-letter queue instead: it no longer
    /// holds its group up.
    pub fn parked(&mut self, message: &Message) {
        if let (Self::Groups(groups), Some(order)) = (self, &message.order) {
            groups.forget_if_idle(&order.group);
        }
    }
}

impl Default for Ready {
    fn default() -> Self {
        Self::new(false)
    }
}

/// A FIFO queue's messages by group, and what it deduplicates.
#[derive(Default)]
pub struct Groups {
    /// Only groups with a message waiting or in flight.
    groups: HashMap<String, Group>,
    /// Messages waiting, across groups.
    waiting: usize,
    next_sequence: u64,
    recent: Recent,
}

#[derive(Default)]
struct Group {
    /// By sequence number.
    waiting: BTreeMap<u64, Message>,
    /// Its messages received and not yet deleted, parked or visible again.
    in_flight: usize,
}

impl Groups {
    /// A new message's place: the end of `group`.
    pub fn place(&mut self, group: String, deduplication_id: Option<String>) -> Order {
        self.next_sequence += 1;
        Order {
            group,
            deduplication_id,
            sequence: self.next_sequence,
        }
    }

    /// Whether a message with this deduplication id was sent within the interval.
    pub fn is_duplicate(&mut self, deduplication_id: &str, now: Instant) -> bool {
        self.recent.expire(now);
        self.recent.ids.contains(deduplication_id)
    }

    /// A message with this deduplication id was sent: the same id is a duplicate for the
    /// interval from now (a duplicate does not extend it, as in SQS).
    pub fn sent(&mut self, deduplication_id: &str, now: Instant) {
        if self.recent.ids.insert(deduplication_id.to_owned()) {
            self.recent
                .by_time
                .push_back((now, deduplication_id.to_owned()));
        }
    }

    fn insert(&mut self, mut message: Message) {
        // Every message of a FIFO queue gets its place when it is sent; one that did not would
        // wait behind nothing rather than be lost.
        let order = message.order.get_or_insert_with(|| {
            let own = format!("unplaced-{}", self.next_sequence + 1);
            self.place(own, None)
        });
        let (group, sequence) = (order.group.clone(), order.sequence);
        self.groups
            .entry(group)
            .or_default()
            .waiting
            .insert(sequence, message);
        self.waiting += 1;
    }

    fn pop(&mut self, current: &mut Option<String>) -> Option<Message> {
        let continues = current.as_ref().filter(|name| {
            self.groups
                .get(*name)
                .is_some_and(|g| !g.waiting.is_empty())
        });
        let name = match continues {
            Some(name) => name.clone(),
            None => self
                .groups
                .iter()
                .filter(|(_, group)| group.in_flight == 0)
                .filter_map(|(name, group)| Some((group.waiting.keys().next()?, name)))
                .min()?
                .1
                .clone(),
        };
        let (_, message) = self.groups.get_mut(&name)?.waiting.pop_first()?;
        self.waiting -= 1;
        *current = Some(name);
        Some(message)
    }

    /// A message of the group is no longer in flight.
    fn settle(&mut self, message: &Message) {
        let Some(order) = &message.order else { return };
        if let Some(group) = self.groups.get_mut(&order.group) {
            group.in_flight = group.in_flight.saturating_sub(1);
        }
        self.forget_if_idle(&order.group);
    }

    fn forget_if_idle(&mut self, name: &str) {
        if self
            .groups
            .get(name)
            .is_some_and(|group| group.in_flight == 0 && group.waiting.is_empty())
        {
            self.groups.remove(name);
        }
    }
}

/// The deduplication ids sent within the interval, oldest first.
#[derive(Default)]
struct Recent {
    by_time: VecDeque<(Instant, String)>,
    ids: HashSet<String>,
}

impl Recent {
    fn expire(&mut self, now: Instant) {
        while let Some((sent, _)) = self.by_time.front() {
            if *sent + DEDUPLICATION_INTERVAL > now {
                break;
            }
            if let Some((_, id)) = self.by_time.pop_front() {
                self.ids.remove(&id);
            }
        }
    }
}
