//! What the backend asks the user manager directly, over D-Bus: whether it answers (its
//! `Version`), a unit's state (one `Properties.GetAll` of every interface at the unit's object
//! path, as `systemctl show` asks it), and the unit's changes as the manager announces them (`PropertiesChanged`, once
//! subscribed). A question costs a message, not a `systemctl` process; a wait costs nothing
//! until something changes.
//!
//! It connects the way a session does: `$DBUS_SESSION_BUS_ADDRESS`, else the user bus at
//! `$XDG_RUNTIME_DIR/bus`. One connection serves the whole process. Without a bus,
//! `systemctl` answers instead, through the manager's private socket
//! (`$XDG_RUNTIME_DIR/systemd/private`): zbus cannot read the manager's replies there, which
//! carry its well-known name as their sender where zbus expects a unique one (its executor
//! thread panics on them). Changes (enable, start, stop, daemon-reload) stay with `systemctl`
//! (see [`crate::systemctl`]).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

use futures_lite::{future, StreamExt as _};
use zbus::{
    blocking::{connection::Builder, Connection},
    message::Type,
    zvariant::{ObjectPath, OwnedValue, Value},
    MatchRule, MessageStream,
};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// How long one question may take: the manager answers in milliseconds when it answers.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the user manager, and how it was reached.
pub struct Manager {
    connection: Connection,
    /// `the session bus`, `the user bus at …`.
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
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        let mut failures = Vec::new();
        if let Some(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
        {
            match Self::on_bus(&address, "the session bus".into()) {
                Ok(manager) => return Ok(manager),
                Err(e) => failures.push(format!("the session bus ({address}): {e}")),
            }
        }
        if let Some(dir) = &runtime_dir {
            let bus = dir.join("bus");
            let route = format!("the user bus at {}", bus.display());
            if !bus.exists() {
                failures.push(format!("{route}: there is none"));
            } else {
                match Self::on_bus(&format!("unix:path={}", bus.display()), route.clone()) {
                    Ok(manager) => return Ok(manager),
                    Err(e) => failures.push(format!("{route}: {e}")),
                }
            }
        } else {
            failures.push("XDG_RUNTIME_DIR is not set".into());
        }
        Err(failures.join("; "))
    }

    /// A connection to the bus at `address`, once the manager has answered on it.
    fn on_bus(address: &str, route: String) -> zbus::Result<Self> {
        let connection = Builder::address(address)?.method_timeout(TIMEOUT).build()?;
        let manager = Self { connection, route };
        manager.version()?;
        Ok(manager)
    }

    fn call<B>(
        &self,
        path: &str,
        interface: &str,
        method: &str,
        body: &B,
    ) -> zbus::Result<zbus::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.connection
            .call_method(Some(SYSTEMD), path, Some(interface), method, body)
    }

    /// The manager's version: it answers.
    pub fn version(&self) -> zbus::Result<String> {
        let reply = self.call(MANAGER_PATH, PROPERTIES, "Get", &(MANAGER, "Version"))?;
        let value: OwnedValue = reply.body().deserialize()?;
        Ok(String::try_from(value).unwrap_or_default())
    }

    /// `ActiveState` of `unit` alone: what "is it running" needs, in one small message.
    pub fn active_state(&self, unit: &str) -> zbus::Result<String> {
        let path = unit_path(unit)?;
        let reply = self.call(path.as_str(), PROPERTIES, "Get", &(UNIT, "ActiveState"))?;
        let value: OwnedValue = reply.body().deserialize()?;
        Ok(String::try_from(value).unwrap_or_default())
    }

    /// The state of `unit` (loaded if it is not; a unit that does not exist has `LoadState`
    /// `not-found`), its properties written as `systemctl show` writes them: numbers in
    /// decimal, booleans `yes`/`no`, times in microseconds since the epoch, and an
    /// unavailable amount as `[not set]`.
    pub fn unit(&self, unit: &str) -> zbus::Result<HashMap<String, String>> {
        self.properties(&unit_path(unit)?)
    }

    /// Every property at `path`, of the unit and of the service alike (an empty interface
    /// name asks for all).
    fn properties(&self, path: &ObjectPath<'_>) -> zbus::Result<HashMap<String, String>> {
        let reply = self.call(path.as_str(), PROPERTIES, "GetAll", &("",))?;
        let properties: HashMap<String, OwnedValue> = reply.body().deserialize()?;
        Ok(properties
            .into_iter()
            .filter_map(|(name, value)| Some((name, written(&value)?)))
            .collect())
    }

    /// Watches `unit` for `within`: `judge` sees its state (as [`Manager::unit`] gives it) now,
    /// and again after each change the manager announces, until it gives a verdict; `None` when
    /// the time ran out first. Nothing is polled: between changes this waits on the socket.
    pub fn watch<T>(
        &self,
        unit: &str,
        within: Duration,
        mut judge: impl FnMut(&HashMap<String, String>) -> Option<T>,
    ) -> zbus::Result<Option<T>> {
        let deadline = Instant::now().checked_add(within);
        let path = unit_path(unit)?;
        // The manager sends its signals only to clients that asked; a client that asked
        // before is told so, which is as good.
        match self.call(MANAGER_PATH, MANAGER, "Subscribe", &()) {
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" => {}
            other => {
                other?;
            }
        }
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(SYSTEMD)?
            .path(path.as_str())?
            .interface(PROPERTIES)?
            .member("PropertiesChanged")?
            .build();
        // Listening before reading the state: no change falls between the two.
        let mut changes = async_io::block_on(MessageStream::for_match_rule(
            rule,
            self.connection.inner(),
            Some(64),
        ))?;
        let mut state = self.properties(&path)?;
        sygen_backend_api::tracing::debug!("watching {unit} for changes over {}", self.route);
        loop {
            if let Some(verdict) = judge(&state) {
                return Ok(Some(verdict));
            }
            let next = async_io::block_on(future::or(async { changes.next().await }, async {
                match deadline {
                    Some(deadline) => async_io::Timer::at(deadline).await,
                    None => future::pending().await,
                };
                None
            }));
            let Some(message) = next else {
                return Ok(None);
            };
            let (_interface, changed, invalidated): (
                String,
                HashMap<String, OwnedValue>,
                Vec<String>,
            ) = message?.body().deserialize()?;
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
                state.extend(
                    changed
                        .into_iter()
                        .filter_map(|(name, value)| Some((name, written(&value)?))),
                );
            } else {
                state = self.properties(&path)?;
            }
        }
    }
}

/// The object path of `unit`, as the manager names it (`sygen.service` is
/// `/org/freedesktop/systemd1/unit/sygen_2eservice`): every byte but ASCII letters, and digits
/// after the first, as `_` and two hex digits. The manager loads a unit when its path is
/// asked for; one that does not exist has `LoadState` `not-found`.
fn unit_path(unit: &str) -> zbus::Result<ObjectPath<'static>> {
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
    Ok(ObjectPath::try_from(path)?)
}

/// A property's value as `systemctl show` writes it, for the kinds the backend reads.
fn written(value: &Value<'_>) -> Option<String> {
    Some(match value {
        Value::Str(text) => text.to_string(),
        Value::Bool(yes) => if *yes { "yes" } else { "no" }.to_owned(),
        Value::U32(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::U64(u64::MAX) => "[not set]".to_owned(),
        Value::U64(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
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
        assert_eq!(written(&Value::from("active")).as_deref(), Some("active"));
        assert_eq!(written(&Value::from(true)).as_deref(), Some("yes"));
        assert_eq!(written(&Value::from(42u32)).as_deref(), Some("42"));
        assert_eq!(written(&Value::from(-1i32)).as_deref(), Some("-1"));
        assert_eq!(
            written(&Value::from(u64::MAX)).as_deref(),
            Some("[not set]")
        );
        assert_eq!(written(&Value::from(vec![1u8])), None);
    }
}
