//! The engine embedded from Rust, as another front door would use it: a pipeline opened
//! from a config string, run `available_now`, its events received, its table read back.

use std::sync::{Arc, Mutex};

use inlet_engine::{Config, Event, Observer, OpenOptions, Pipeline, RunMode};
use serde_json::json;

use crate::support::*;

/// Keeps every event it is told.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl Observer for Events {
    fn event(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event.clone());
    }
}

#[tokio::test]
async fn an_embedded_pipeline_runs_available_now_and_reports_its_events() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(3, 5);
    let text = "pipeline_id = \"embedded\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 2\n\
                [sink]\ntable = \"${TABLE_DIR}\"\n[checkpoint]\nlocation = \"state\"\n";
    let table = tmp.path().join("table");
    let table_dir = table.display().to_string();
    let config = Config::parse(&tmp.path().join("pipeline.toml"), text, &|name| {
        (name == "TABLE_DIR").then(|| table_dir.clone())
    })
    .expect("config");
    let mut pipeline = Pipeline::open(
        config,
        OpenOptions {
            draining: true,
            ..OpenOptions::default()
        },
    )
    .await
    .expect("open");
    let events = Arc::new(Events::default());
    pipeline.observe(events.clone());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let stats = pipeline
        .run(RunMode::AvailableNow, stopped)
        .await
        .expect("run");
    assert_eq!((stats.files, stats.rows, stats.batches), (3, 15, 2));

    let events = events.0.lock().expect("events").clone();
    assert!(
        events.contains(&Event::Discovered {
            new: 3,
            duplicates: 0
        }),
        "{events:?}"
    );
    let planned: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            Event::BatchPlanned { batch_id, .. } => Some(*batch_id),
            _ => None,
        })
        .collect();
    assert_eq!(planned, vec![1, 2]);
    let read: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::FileRead { rows, .. } => Some(*rows),
            _ => None,
        })
        .sum();
    assert_eq!(read, 15);
    let committed: Vec<(i64, u64, Option<i64>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::BatchCommitted(c) => Some((c.batch_id, c.rows, c.delta_version)),
            _ => None,
        })
        .collect();
    assert_eq!(committed, vec![(1, 10, Some(1)), (2, 5, Some(2))]);

    let t = read_delta(&url_of(&table), &json!({}));
    assert_eq!(
        t.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
}
