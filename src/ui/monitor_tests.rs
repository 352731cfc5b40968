//! Unit tests of the monitor's state (events in, plots and statuses out).
use super::*;
use crate::engine::meter::EdgeStats;

fn progress(batch: u64, rows: u64) -> RunEvent {
    RunEvent::BatchCompleted(Box::new(StreamProgress {
        expectations: Default::default(),
        pipeline: "bronze".into(),
        query_id: "q".into(),
        batch_id: batch,
        timestamp: String::new(),
        replayed: false,
        num_input_rows: rows,
        input_rows_per_second: rows as f64,
        processed_rows_per_second: rows as f64 * 2.0,
        duration_ms: BTreeMap::from([("read".into(), 3), ("write".into(), 7)]),
        sources: BTreeMap::new(),
        sinks: BTreeMap::from([("sink".into(), batch as i64)]),
        rows_per_node: BTreeMap::new(),
        transforms: BTreeMap::new(),
        edges: vec![EdgeStats {
            from: NodeId::new("src"),
            to: NodeId::new("sink"),
            port: "in".into(),
            rows,
            produce_ms: 1.0,
        }],
        node_ms: BTreeMap::from([("src".into(), 1.0), ("sink".into(), 6.0)]),
        event_time: None,
        state_operators: BTreeMap::new(),
    }))
}

#[test]
fn statuses_points_and_rates_follow_the_events() {
    let mut m = Monitor::default();
    m.on_event(&RunEvent::PipelineStarted { pipeline: "bronze".into() });
    assert_eq!(m.status("bronze"), RunStatus::Running);
    m.on_event(&progress(0, 100));
    m.on_event(&progress(1, 50));
    let pm = &m.pipelines["bronze"];
    assert_eq!(pm.points.len(), 2);
    assert_eq!(pm.rows, 150);
    assert_eq!(pm.points[1].write_ms, 7.0);
    let rates = m.edge_rates("bronze");
    // 150 rows over a window of one to ten seconds (however slow this machine is)
    let rate = rates[&(NodeId::new("sink"), "in".to_owned())];
    assert!((15.0..=150.0).contains(&rate), "{rate}");
    assert_eq!(m.slowest("bronze"), Some((NodeId::new("sink"), 6.0)));
    m.on_event(&RunEvent::Idle { pipeline: "bronze".into() });
    assert_eq!(m.status("bronze"), RunStatus::Waiting);
    m.on_event(&progress(2, 10));
    m.on_event(&RunEvent::Warning {
        pipeline: "bronze".into(),
        node: Some(NodeId::new("src")),
        message: "waiting for the broker: connection refused".into(),
    });
    assert_eq!(m.status("bronze"), RunStatus::Waiting, "a broker outage waits, not fails");
    assert!(m.pipelines["bronze"].warning.as_deref().is_some_and(|w| w.contains("refused")));
    m.on_event(&RunEvent::PipelineFailed {
        pipeline: "bronze".into(),
        node: Some(NodeId::new("sink")),
        message: "disk full".into(),
    });
    m.on_event(&RunEvent::PipelineFinished {
        pipeline: "bronze".into(),
        rows_written: 0,
        duration_ms: 0,
        stopped: true,
    });
    assert_eq!(m.status("bronze"), RunStatus::Failed, "a failure is not hidden by a stop");
    assert!(m.edge_rates("bronze").is_empty(), "no rates when not running");
    m.on_event(&RunEvent::PipelineStarted { pipeline: "bronze".into() });
    m.on_event(&RunEvent::PipelineFinished {
        pipeline: "bronze".into(),
        rows_written: 0,
        duration_ms: 5,
        stopped: true,
    });
    assert_eq!(m.status("bronze"), RunStatus::Stopped);
    m.on_event(&RunEvent::PipelineStarted { pipeline: "bronze".into() });
    m.on_event(&RunEvent::PipelineFinished {
        pipeline: "bronze".into(),
        rows_written: 10,
        duration_ms: 5,
        stopped: false,
    });
    assert_eq!(m.status("bronze"), RunStatus::Idle, "availableNow ran out of work");
    // a run whose last events were lost still ends
    m.on_event(&RunEvent::PipelineStarted { pipeline: "bronze".into() });
    m.run_ended("bronze", None);
    assert_eq!(m.status("bronze"), RunStatus::Stopped);
    m.run_ended("bronze", Some((None, "broker gone".into())));
    assert_eq!(m.status("bronze"), RunStatus::Failed);
    assert_eq!(compact(12_345.0), "12k");
    assert_eq!(compact(1_500.0), "1.5k");
    // counts are whole: the Lakehouse tab showed an empty table as "0.0 rows"
    assert_eq!(
        (count(0), count(5), count(999), count(1_500)),
        ("0".into(), "5".into(), "999".into(), "1.5k".into())
    );
}
