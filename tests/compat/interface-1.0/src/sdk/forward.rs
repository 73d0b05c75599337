//! Forwards a backend's `tracing` events to the host.
//!
//! A backend library links its own copy of `tracing`, whose global dispatcher the host never
//! sets; so each call runs under a dispatcher that formats events and hands them to the host's
//! console sink, which re-emits them under the host's subscriber (`-v`, `RUST_LOG`).

use std::fmt::Write as _;

use tracing::{
    field::{Field, Visit},
    level_filters::LevelFilter,
    Dispatch, Event, Level, Subscriber,
};
use tracing_subscriber::{layer::Context, prelude::*, registry::Registry, Layer};

use super::Console;
use crate::abi::level;

pub(super) fn dispatch(console: &Console) -> Dispatch {
    let max_level = match console.0.max_level() {
        level::OFF => LevelFilter::OFF,
        level::ERROR => LevelFilter::ERROR,
        level::WARN => LevelFilter::WARN,
        level::INFO => LevelFilter::INFO,
        level::DEBUG => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    Dispatch::new(
        Registry::default().with(
            Forward {
                console: console.clone(),
            }
            .with_filter(max_level),
        ),
    )
}

struct Forward {
    console: Console,
}

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        let mut text = EventText::default();
        event.record(&mut text);
        let metadata = event.metadata();
        let level = match *metadata.level() {
            Level::ERROR => level::ERROR,
            Level::WARN => level::WARN,
            Level::INFO => level::INFO,
            Level::DEBUG => level::DEBUG,
            Level::TRACE => level::TRACE,
        };
        self.console
            .0
            .event(level, metadata.target().into(), text.0.as_str().into());
    }
}

/// The event's message followed by its other fields as `name=value`.
#[derive(Default)]
struct EventText(String);

impl Visit for EventText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}
