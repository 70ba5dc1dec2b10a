//! Splitting one job into parts that run in parallel, on as many workers: an `all` job into
//! Scan segments, a big room into ranges of connection ids.
//!
//! A room is split only once it is known to be big: its job reads the first page, and a room
//! that fits in it is posted by that job as before (no extra read, no extra message). A room
//! with more hands its whole range on as `ROOM_SPLIT_WAYS` parts, each a `room` job with a
//! `cursor` (the position after its lower bound) and an `until` (its upper bound, inclusive),
//! read from the room index's sort key (`connectionId`). The bounds are fixed by the number of
//! parts alone, and each part's hop names both the number and its place, so a split redone
//! after a crash enqueues the same parts under the same hops, which find their progress
//! records and do not run twice; redone with another `ROOM_SPLIT_WAYS` (a deploy in between),
//! its parts are new jobs that cover the whole room again: some members get the message twice,
//! none is skipped. Each part carries its share of the account's rate as its starting pace
//! (see `pacer`).

use super::batch::{Batch, Engine, JobFailure};
use super::stats::FanoutStats;
use crate::domain::connection::CONNECTION_ID_ALPHABET as ID_ALPHABET;
use crate::domain::{Checkpoint, Job, Segment, Split, Target};
use std::time::Duration;

/// The `ways - 1` bounds that cut the connection-id space into `ways` ranges of about equal
/// size: API Gateway's ids are random base64, so their first two characters are uniform over
/// 64 x 64 values. Any ids are still covered exactly once (the ranges meet end to end); ids of
/// another shape only spread less evenly.
pub(super) fn room_bounds(ways: u32) -> Vec<String> {
    let cells = ID_ALPHABET.len() * ID_ALPHABET.len();
    let ways = (ways.max(1) as usize).min(cells);
    (1..ways)
        .map(|k| {
            let cell = k * cells / ways;
            let first = ID_ALPHABET[cell / ID_ALPHABET.len()];
            let second = ID_ALPHABET[cell % ID_ALPHABET.len()];
            String::from_utf8(vec![first, second]).expect("ASCII")
        })
        .collect()
}

impl Engine {
    /// An `all` job is split into Scan segments once, before it has read anything.
    pub(super) fn splits_scan(&self, job: &Job) -> bool {
        job.target == Target::All
            && job.segment.is_none()
            && job.cursor.is_none()
            && self.config.scan_segments > 1
    }

    /// A room job from its start, not yet split, and nothing of it posted: may be split, if
    /// its first page says the room is bigger than one page.
    pub(super) fn may_split_room(&self, job: &Job, checkpoint: &Checkpoint) -> bool {
        matches!(job.target, Target::Room(_))
            && self.config.room_split_ways > 1
            // Parts run side by side: one member would see the room's next message overtake.
            && !self.ordered()
            && job.cursor.is_none()
            && job.until.is_none()
            && checkpoint.cursor.is_none()
            && checkpoint.pending.is_empty()
    }

    /// Splits the job as `plan` says: one `all` job per Scan segment, or the room's ranges.
    pub(super) async fn split(
        &self,
        batch: &Batch,
        owner: &str,
        key: &str,
        job: &Job,
        plan: Split,
    ) -> Result<FanoutStats, JobFailure> {
        let parts: Vec<Job> = match plan {
            Split::Scan { total } => (0..total)
                .map(|index| Job {
                    segment: Some(Segment { index, total }),
                    // The number of segments in the name: segments of another split are
                    // other jobs.
                    hop: Some(job.child_hop(&format!("s{total}x{index}"))),
                    ..job.clone()
                })
                .collect(),
            Split::Room { ways } => self.room_parts(job, ways),
        };
        let stats = self.hand_on_parts(batch, owner, key, plan, parts).await?;
        Ok(FanoutStats {
            rooms_split: u64::from(matches!(plan, Split::Room { .. })),
            ..stats
        })
    }

    /// The room's parts, each a range of ids with its share of the account's rate.
    fn room_parts(&self, job: &Job, ways: u32) -> Vec<Job> {
        let room = job.target.room();
        let ways = ways.max(1);
        let pace = (self.config.account_post_rate / ways).max(1);
        let bounds = room_bounds(ways);
        let starts = std::iter::once(None).chain(bounds.iter().map(Some));
        let ends = bounds.iter().map(Some).chain(std::iter::once(None));
        starts
            .zip(ends)
            .enumerate()
            .map(|(index, (from, until))| Job {
                cursor: from.map(|bound| self.store.cursor_after(room, bound)),
                until: until.cloned(),
                pace: Some(pace),
                // The number of parts in the name: parts of another split are other jobs.
                hop: Some(job.child_hop(&format!("p{ways}x{index}"))),
                ..job.clone()
            })
            .collect()
    }

    /// Saves the plan, enqueues its parts, then marks the split job finished. A split redone
    /// before that (the job redelivered) replays the saved plan: the same parts, which their
    /// hops make no-ops.
    async fn hand_on_parts(
        &self,
        batch: &Batch,
        owner: &str,
        key: &str,
        plan: Split,
        parts: Vec<Job>,
    ) -> Result<FanoutStats, JobFailure> {
        let planned = Checkpoint {
            split: Some(plan),
            ..Checkpoint::default()
        };
        self.save_by(batch, owner, key, &planned).await?;
        let mut continuations = 0;
        for part in &parts {
            self.enqueue_by(batch, part, Duration::ZERO).await?;
            continuations += 1;
        }
        self.mark_finished(batch, owner, key).await;
        Ok(FanoutStats {
            continuations,
            ..FanoutStats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cut_the_id_space_in_even_ascending_ranges() {
        assert!(room_bounds(1).is_empty());
        assert_eq!(room_bounds(2), ["U+"]);
        assert_eq!(room_bounds(4), ["E+", "U+", "k+"]);
        for ways in [2, 3, 7, 8, 64, 100, 5000] {
            let bounds = room_bounds(ways);
            assert_eq!(bounds.len(), (ways as usize).min(4096) - 1);
            assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "{ways}");
        }
        // Random base64 ids fall about evenly into the ranges.
        let bounds = room_bounds(8);
        let mut counts = [0usize; 8];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..80_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let id: String = (0..16)
                .map(|i| ID_ALPHABET[((state >> (i * 4)) & 63) as usize] as char)
                .collect();
            counts[bounds.partition_point(|bound| *bound < id)] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }
}
