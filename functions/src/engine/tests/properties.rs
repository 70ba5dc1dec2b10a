//! Property: whatever the schedule of faults and crashes, every member gets the message at
//! least once, and no one gets it more often than the duplicate bound allows.
