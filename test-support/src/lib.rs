//! What the tests of every crate share: [`moto`] for DynamoDB and SQS, and [`http`], a small
//! HTTP/1.1 client for the local stack's and the benchmark endpoint's plain endpoints.

pub mod http;
pub mod moto;
