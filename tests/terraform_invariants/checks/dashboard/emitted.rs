//! The metrics the code emits in the stack's namespace, read back from the EMF lines the
//! functions write.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use fanout::config::Function;
use fanout::domain::ErrorCode;
use fanout::domain::RoomName;
use fanout::domain::history::Recovered;
use fanout::engine::FanoutStats;
use fanout::metrics::{
    EmfConfig, FANOUT_LATENCY, RECOVERED_MESSAGES, RECOVERIES, RECOVERIES_FAILED,
    RECOVERIES_INCOMPLETE, SEND_ACCEPTED, SEND_REFUSED, WORKER_COUNTS, emf_line, recover_emf_line,
    send_emf_line,
};

/// The metrics the code emits in its own namespace (`var.metrics_namespace`), by name.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub metrics: BTreeMap<String, Emitter>,
}

/// Who writes one metric (each under its own `Function`), and the dimension sets it carries:
/// CloudWatch finds it by exactly one of them.
#[derive(Debug, Clone)]
pub struct Emitter {
    pub functions: BTreeSet<Function>,
    pub dimension_sets: BTreeSet<BTreeSet<String>>,
}

/// The EMF lines each function writes, read back: the worker's (`WORKER_COUNTS` and
/// `FANOUT_LATENCY`), sendmessage's and publish's (`SEND_ACCEPTED`, `SEND_REFUSED` by
/// `REFUSAL_CODE`: the same lines, each under its own `Function`) and recover's (`RECOVERIES`
/// and the rest, or `RECOVERIES_FAILED`).
/// Each line must declare exactly those lists' names.
pub fn emitted_metrics() -> Emitted {
    let config = |function: Function| EmfConfig {
        namespace: EmfConfig::DEFAULT_NAMESPACE.to_owned(),
        workspace: "dev".to_owned(),
        function: function.binary().to_owned(),
    };
    let stats = FanoutStats {
        fanout_latency_ms: Some(1),
        ..FanoutStats::default()
    };
    let send_lines = |function: Function| {
        vec![
            send_emf_line(&config(function), Ok(()), 0),
            send_emf_line(&config(function), Err(ErrorCode::Unavailable), 0),
        ]
    };
    let worker_names = WORKER_COUNTS
        .iter()
        .map(|(name, _)| *name)
        .chain([FANOUT_LATENCY]);
    let emitters = [
        (
            Function::Worker,
            vec![emf_line(&config(Function::Worker), &stats, 0)],
            worker_names.collect::<BTreeSet<_>>(),
        ),
        (
            Function::SendMessage,
            send_lines(Function::SendMessage),
            BTreeSet::from([SEND_ACCEPTED, SEND_REFUSED]),
        ),
        (
            Function::Publish,
            send_lines(Function::Publish),
            BTreeSet::from([SEND_ACCEPTED, SEND_REFUSED]),
        ),
        (
            Function::Recover,
            vec![
                recover_emf_line(
                    &config(Function::Recover),
                    Some(&Recovered {
                        room: RoomName::lobby(),
                        from: 1,
                        to: 2,
                        epoch: None,
                        complete: false,
                        count: 1,
                    }),
                    0,
                ),
                recover_emf_line(&config(Function::Recover), None, 0),
            ],
            BTreeSet::from([
                RECOVERIES,
                RECOVERIES_INCOMPLETE,
                RECOVERED_MESSAGES,
                RECOVERIES_FAILED,
            ]),
        ),
    ];
    let mut metrics: BTreeMap<String, Emitter> = BTreeMap::new();
    for (function, lines, listed) in emitters {
        let mut names = BTreeSet::new();
        for line in lines {
            let line: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("{function:?} writes an EMF line that is not JSON: {e}")
            });
            for directive in line["_aws"]["CloudWatchMetrics"]
                .as_array()
                .expect("an EMF line has _aws.CloudWatchMetrics")
            {
                let sets: BTreeSet<BTreeSet<String>> = directive["Dimensions"]
                    .as_array()
                    .expect("an EMF directive has Dimensions")
                    .iter()
                    .map(|set| {
                        set.as_array()
                            .expect("a dimension set is an array")
                            .iter()
                            .map(|d| d.as_str().expect("a dimension is a string").to_owned())
                            .collect()
                    })
                    .collect();
                for metric in directive["Metrics"]
                    .as_array()
                    .expect("an EMF directive has Metrics")
                {
                    let name = metric["Name"].as_str().expect("a metric has a Name");
                    names.insert(name.to_owned());
                    let emitter = metrics.entry(name.to_owned()).or_insert(Emitter {
                        functions: BTreeSet::new(),
                        dimension_sets: BTreeSet::new(),
                    });
                    emitter.functions.insert(function);
                    emitter.dimension_sets.extend(sets.iter().cloned());
                }
            }
        }
        let listed: BTreeSet<String> = listed.into_iter().map(str::to_owned).collect();
        assert_eq!(
            names, listed,
            "{function:?}'s EMF lines emit other metrics than fanout::metrics lists, the lists the dashboard and alarms are checked against"
        );
    }
    Emitted { metrics }
}

/// The functions whose metrics are emitted in the stack's namespace.
pub(super) const EMITTING: [Function; 4] = [
    Function::Worker,
    Function::SendMessage,
    Function::Recover,
    Function::Publish,
];
