//! What the backend asks the user manager directly, over D-Bus: whether it answers (its
//! `Version`), a unit's state (one `Properties.GetAll` of every interface at the unit's object
//! path, as `systemctl show` asks it), and the unit's changes as the manager announces them
//! (`PropertiesChanged`, once subscribed). A question costs a message, not a `systemctl`
//! process; a wait costs nothing until something changes.
//!
//! It connects the way `systemctl --user` does: `$DBUS_SESSION_BUS_ADDRESS`, else the user bus
//! at `$XDG_RUNTIME_DIR/bus`, else the manager's private socket
//! `$XDG_RUNTIME_DIR/systemd/private` (a direct connection: no bus, no `Hello`, no match rules
//! to register). One connection serves the whole process, on the calling thread: libdbus
//! (built in, so that the backend loads where no libdbus is installed) reads replies where they
//! are waited for, with no thread of its own to hand them over. When no way in answers,
//! `systemctl` does. Changes (enable, start, stop, daemon-reload) stay with `systemctl` (see
//! [`crate::systemctl`]).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use dbus::{
    arg::{ArgType, PropMap, RefArg, Variant},
    blocking::{stdintf::org_freedesktop_dbus::Properties, BlockingSender as _, SyncConnection},
    channel::{Channel, MatchingReceiver as _},
    message::MatchRule,
    strings::Path,
    Message,
};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const BUS: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";
/// How long one question may take: the manager answers in milliseconds when it answers.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a way in may take to connect and have the manager answer: three ways tried in
/// turn stay within the time sygen gives a question.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the user manager, and how it was reached.
pub struct Manager {
    connection: SyncConnection,
    /// Through a bus (`true`), or straight to the manager.
    on_bus: bool,
    /// `the session bus`, `the user bus at …`, `the manager's private socket at …`.
    pub route: String,
}

/// The user manager, connected once per process; `Err` says why no connection could be made
/// (not retried: `systemctl` answers instead).
pub fn manager() -> Result<&'static Manager, String> {
    static SHARED: OnceLock<Result<Manager, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let manager = Manager::connect()?;
            sygen_backend_api::tracing::debug!(
                "connected to the user manager over {}",
                manager.route
            );
            Ok(manager)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Manager {
    /// Tries each way in, in order; the error lists why each failed.
    pub fn connect() -> Result<Self, String> {
        let mut failures = Vec::new();
        if let Some(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
        {
            match Self::open(&address, true, "the session bus".into()) {
                Ok(manager) => return Ok(manager),
                Err(e) => failures.push(format!("the session bus ({address}): {}", said(&e))),
            }
        }
        let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
        else {
            failures.push("XDG_RUNTIME_DIR is not set".into());
            return Err(failures.join("; "));
        };
        let ways = [
            (runtime_dir.join("bus"), true, "the user bus"),
            (
                runtime_dir.join("systemd/private"),
                false,
                "the manager's private socket",
            ),
        ];
        for (socket, on_bus, name) in ways {
            let route = format!("{name} at {}", socket.display());
            if !socket.exists() {
                failures.push(format!("{route}: there is none"));
                continue;
            }
            let address = format!("unix:path={}", socket.display());
            match Self::open(&address, on_bus, route.clone()) {
                Ok(manager) => {
                    if !failures.is_empty() {
                        sygen_backend_api::tracing::debug!(
                            "the user manager did not answer over {}",
                            failures.join("; ")
                        );
                    }
                    return Ok(manager);
                }
                Err(e) => failures.push(format!("{route}: {}", said(&e))),
            }
        }
        Err(failures.join("; "))
    }

    /// A connection to `address` (a bus, or the manager itself), once the manager has
    /// answered on it within [`CONNECT_TIMEOUT`].
    fn open(address: &str, on_bus: bool, route: String) -> Result<Self, dbus::Error> {
        let channel = Channel::open_private(address)?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        if on_bus {
            // `Hello`, as libdbus's own registering sends it. (Nothing here asks libdbus for the
            // unique name the bus gives back.)
            let hello = Message::new_method_call(BUS, BUS_PATH, BUS, "Hello")
                .map_err(|e| dbus::Error::new_failed(&e))?;
            ask_by(&channel, hello, deadline)?;
        }
        ask_by(&channel, version_question()?, deadline)?;
        Ok(Self {
            connection: SyncConnection::from(channel),
            on_bus,
            route,
        })
    }

    fn at<'p>(&self, path: impl Into<Path<'p>>) -> dbus::blocking::Proxy<'p, &SyncConnection> {
        self.connection.with_proxy(SYSTEMD, path, TIMEOUT)
    }

    /// The manager's version: it answers.
    pub fn version(&self) -> Result<String, dbus::Error> {
        let answer = self
            .connection
            .send_with_reply_and_block(version_question()?, TIMEOUT)?;
        let Variant(version): Variant<String> = answer.read1()?;
        Ok(version)
    }

    /// `ActiveState` of `unit` alone: what "is it running" needs, in one small message.
    pub fn active_state(&self, unit: &str) -> Result<String, dbus::Error> {
        self.at(unit_path(unit)?).get(UNIT, "ActiveState")
    }

    /// The state of `unit` (loaded if it is not; a unit that does not exist has `LoadState`
    /// `not-found`), its properties written as `systemctl show` writes them: numbers in
    /// decimal, booleans `yes`/`no`, times in microseconds since the epoch, and an
    /// unavailable amount as `[not set]`.
    pub fn unit(&self, unit: &str) -> Result<HashMap<String, String>, dbus::Error> {
        self.properties(&unit_path(unit)?)
    }

    /// Every property at `path`, of the unit and of the service alike (an empty interface
    /// name asks for all).
    fn properties(&self, path: &Path<'static>) -> Result<HashMap<String, String>, dbus::Error> {
        Ok(written_all(self.at(path.clone()).get_all("")?))
    }

    /// Watches `unit` for `within`: `judge` sees its state (as [`Manager::unit`] gives it) now,
    /// and again after each change the manager announces, until it gives a verdict; `None` when
    /// the time ran out first. Nothing is polled: between changes this waits on the socket.
    pub fn watch<T>(
        &self,
        unit: &str,
        within: Duration,
        mut judge: impl FnMut(&HashMap<String, String>) -> Option<T>,
    ) -> Result<Option<T>, dbus::Error> {
        // (A limit past the end of time ends the watch at once.)
        let deadline = Instant::now()
            .checked_add(within)
            .unwrap_or_else(Instant::now);
        let path = unit_path(unit)?;
        // The manager sends its signals only to clients that asked; a client that asked
        // before is told so, which is as good.
        let subscribed: Result<(), dbus::Error> =
            self.at(MANAGER_PATH).method_call(MANAGER, "Subscribe", ());
        match subscribed {
            Err(e) if e.name() == Some("org.freedesktop.systemd1.AlreadySubscribed") => {}
            other => other?,
        }
        let rule = MatchRule::new_signal(PROPERTIES, "PropertiesChanged")
            .with_sender(SYSTEMD)
            .with_path(path.clone());
        // Listening before reading the state: no change falls between the two. On a bus, the
        // bus is told what to pass on; straight to the manager, everything it sends arrives.
        let announced = Arc::new(Mutex::new(Vec::<Message>::new()));
        let kept = Arc::clone(&announced);
        let token = self.connection.start_receive(
            rule.clone(),
            Box::new(move |message, _| {
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(message);
                true
            }),
        );
        let watching = Watching {
            manager: self,
            token,
            rule: self.on_bus.then(|| rule.match_str()),
        };
        if let Some(rule) = &watching.rule {
            self.connection.add_match_no_cb(rule)?;
        }
        let mut state = self.properties(&path)?;
        sygen_backend_api::tracing::debug!("watching {unit} for changes over {}", self.route);
        loop {
            if let Some(verdict) = judge(&state) {
                return Ok(Some(verdict));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.connection.process(left)?;
            let messages =
                std::mem::take(&mut *announced.lock().unwrap_or_else(PoisonError::into_inner));
            for message in messages {
                let (_interface, changed, invalidated): (String, PropMap, Vec<String>) =
                    message.read3()?;
                sygen_backend_api::tracing::debug!(
                    "{unit} changed: {}",
                    changed
                        .keys()
                        .chain(&invalidated)
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if invalidated.is_empty() {
                    state.extend(written_all(changed));
                } else {
                    state = self.properties(&path)?;
                }
            }
        }
    }
}

/// A watch in progress: dropped, it stops receiving the unit's changes (and, on a bus, asks
/// the bus to stop passing them on).
struct Watching<'m> {
    manager: &'m Manager,
    token: dbus::channel::Token,
    rule: Option<String>,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.manager.connection.stop_receive(self.token);
        if let Some(rule) = &self.rule {
            let _ = self.manager.connection.remove_match_no_cb(rule);
        }
    }
}

/// The manager's `Version`, asked without auto-start: on a bus the manager is not on (a
/// desktop session's own), the bus must not try to start one.
fn version_question() -> Result<Message, dbus::Error> {
    let mut question = Message::new_method_call(SYSTEMD, MANAGER_PATH, PROPERTIES, "Get")
        .map_err(|e| dbus::Error::new_failed(&e))?
        .append2(MANAGER, "Version");
    question.set_auto_start(false);
    Ok(question)
}

/// Sends `question` on a new connection and waits for its answer until `deadline`.
/// libdbus's own blocking call would wait for the connection's authentication without
/// bound (it flushes first), so a socket that accepts and never answers (a stopped bus daemon
/// or manager) would hold the backend: here every wait is bounded.
fn ask_by(channel: &Channel, question: Message, deadline: Instant) -> Result<Message, dbus::Error> {
    let serial = channel
        .send(question)
        .map_err(|()| dbus::Error::new_failed("the connection closed"))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(dbus::Error::new_failed(&format!(
                "no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
        if let Some(mut message) = channel.blocking_pop_message(left)? {
            if message.get_reply_serial() == Some(serial) {
                message.as_result()?;
                return Ok(message);
            }
        }
    }
}

/// What a D-Bus error says: its message, else its name.
fn said(error: &dbus::Error) -> String {
    error
        .message()
        .or(error.name())
        .unwrap_or("unknown D-Bus error")
        .to_owned()
}

/// The object path of `unit`, as the manager names it (`sygen.service` is
/// `/org/freedesktop/systemd1/unit/sygen_2eservice`): every byte but ASCII letters, and digits
/// after the first, as `_` and two hex digits. The manager loads a unit when its path is
/// asked for; one that does not exist has `LoadState` `not-found`.
fn unit_path(unit: &str) -> Result<Path<'static>, dbus::Error> {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        path.push('_');
    }
    for (i, byte) in unit.bytes().enumerate() {
        if byte.is_ascii_alphabetic() || (i > 0 && byte.is_ascii_digit()) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("_{byte:02x}"));
        }
    }
    Path::new(path).map_err(|e| dbus::Error::new_failed(&e))
}

/// The properties the backend reads, as `systemctl show` writes them.
fn written_all(properties: PropMap) -> HashMap<String, String> {
    properties
        .into_iter()
        .filter_map(|(name, value)| Some((name, written(&*value.0)?)))
        .collect()
}

/// A property's value as `systemctl show` writes it, for the kinds the backend reads.
fn written(value: &dyn RefArg) -> Option<String> {
    Some(match value.arg_type() {
        ArgType::String => value.as_str()?.to_owned(),
        ArgType::Boolean => if value.as_u64()? != 0 { "yes" } else { "no" }.to_owned(),
        ArgType::UInt64 => match value.as_u64()? {
            u64::MAX => "[not set]".to_owned(),
            n => n.to_string(),
        },
        ArgType::UInt32 | ArgType::UInt16 | ArgType::Byte => value.as_u64()?.to_string(),
        ArgType::Int64 | ArgType::Int32 | ArgType::Int16 => value.as_i64()?.to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unit_paths_as_the_manager_does() {
        let path = |unit: &str| unit_path(unit).unwrap().to_string();
        assert_eq!(
            path("sygen.service"),
            "/org/freedesktop/systemd1/unit/sygen_2eservice"
        );
        assert_eq!(
            path("my-agent@2.service"),
            "/org/freedesktop/systemd1/unit/my_2dagent_402_2eservice"
        );
        assert_eq!(
            path("1st.service"),
            "/org/freedesktop/systemd1/unit/_31st_2eservice"
        );
        assert_eq!(path(""), "/org/freedesktop/systemd1/unit/_");
    }

    #[test]
    fn writes_values_as_systemctl_show_does() {
        assert_eq!(written(&"active".to_owned()).as_deref(), Some("active"));
        assert_eq!(written(&true).as_deref(), Some("yes"));
        assert_eq!(written(&false).as_deref(), Some("no"));
        assert_eq!(written(&42u32).as_deref(), Some("42"));
        assert_eq!(written(&-1i32).as_deref(), Some("-1"));
        assert_eq!(written(&u64::MAX).as_deref(), Some("[not set]"));
        assert_eq!(written(&vec![1u8]), None);
    }
}
